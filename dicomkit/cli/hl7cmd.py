"""`dicomkit hl7 send`: an HL7 v2 message over MLLP to the RIS, and its ACK."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dicomkit.cli.common import CTX, JsonOpt, TimeoutOpt, set_json
from dicomkit.errors import ExitCode, UsageError

app = typer.Typer(help="Send HL7 v2 messages (ORM, OMI, ADT) to the RIS over MLLP.")


@app.command("send")
def send(
    file: Annotated[
        str,
        typer.Argument(help="A file of HL7 v2 messages (segments one per line), or - for stdin."),
    ],
    to: Annotated[
        str | None,
        typer.Option("--to", help="HOST:PORT of an HL7 listener instead of the lab's RIS."),
    ] = None,
    timeout: TimeoutOpt = None,
    json: JsonOpt = False,
) -> None:
    """Send each message in FILE over one MLLP connection and print its ACK (AA, AE or AR,
    with the fields its ERR segments name). Exit 2 when a message is not accepted."""
    import sys

    from dicomkit import ui
    from dicomkit.ris.mllp_client import send_messages, split_messages

    set_json(json)
    cfg = CTX.config()
    host, port = cfg.host, cfg.hl7_port
    if to:
        h, _, p = to.rpartition(":")
        if not h or not p.isdigit() or not 0 < int(p) < 65536:
            raise UsageError(f"--to {to!r} is not HOST:PORT", "e.g. --to 127.0.0.1:2575")
        host, port = h, int(p)
    try:
        raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read {file}: {exc.strerror}", "name an HL7 file, or - for stdin"
        ) from None
    # Bytes that are not UTF-8 go as they are: the RIS says what is wrong with them.
    text = raw.decode("utf-8", "surrogateescape")
    messages = [m.encode("utf-8", "surrogateescape") for m in split_messages(text)]
    if not messages:
        raise UsageError(f"{file} holds no HL7 message", "a message starts with an MSH segment")
    acks = send_messages(host, port, messages, timeout or cfg.timeout)
    if json:
        out = [a.to_dict() for a in acks]
        ui.print_json(out[0] if len(out) == 1 else out)
    else:
        for ack in acks:
            mark = ui.OK if ack.accepted else ui.FAIL
            ui.console.print(
                f"{mark} {ui.escape(ack.message_type or 'message')} "
                f"{ui.escape(ack.control_id)}: [bold]{ack.code}[/bold] {ui.escape(ack.text)}"
            )
            for err in ack.errors:
                ui.console.print(
                    f"    ERR {ui.escape(err.location)} ({err.code}): {ui.escape(err.text)}"
                )
    if not all(a.accepted for a in acks):
        raise typer.Exit(ExitCode.USAGE)
