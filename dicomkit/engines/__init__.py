"""Engines: three ways to run one lab (docker, native, embedded), chosen by ``select_engine``."""
