"""Engines: three ways to run one lab (docker, native, embedded), chosen in ``choice``.

state.py the lab's state file; protocol.py what every engine offers; choice.py which engine
runs, and the fallback; process.py one background process; process_lab.py the lab as local
processes (native and embedded); orthanc_config.py compose/orthanc.json for this lab;
native.py, embedded.py, docker.py the engines.
"""
