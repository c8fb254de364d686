"""The relay's own send path in daphne: frames as RFC 6455 parsers read them, and installed."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from relay.daphne_send import data_frame, install


def parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("incomplete frame")


# Lengths at the edges of the three length encodings (7 bits, 16 bits, 64 bits).
@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("binary", [True, False])
def test_data_frames_parse_as_one_whole_message(length, binary):
    payload = bytes(index % 251 for index in range(length))
    frame = parse(data_frame(payload, binary))
    assert frame.fin
    assert frame.opcode == (Opcode.BINARY if binary else Opcode.TEXT)
    assert frame.data == payload


def test_install_makes_daphne_build_the_direct_protocol(monkeypatch):
    from daphne import ws_protocol

    monkeypatch.setattr(ws_protocol.WebSocketFactory, "protocol", ws_protocol.WebSocketProtocol)
    assert install()
    protocol = ws_protocol.WebSocketFactory.protocol
    assert issubclass(protocol, ws_protocol.WebSocketProtocol)
    assert protocol is not ws_protocol.WebSocketProtocol
    assert install() and ws_protocol.WebSocketFactory.protocol is protocol  # idempotent
