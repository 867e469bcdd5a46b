"""Capped capture: head and tail kept, the cut marked, the text safe to store and show."""

from __future__ import annotations

import pytest

from services.runbook_runner.capture import OutputCapture, printable


def captured(limit: int, *chunks: bytes) -> OutputCapture:
    capture = OutputCapture(limit)
    for chunk in chunks:
        capture.feed(chunk)
    return capture


def test_output_within_the_limit_is_kept_whole_whatever_the_chunks() -> None:
    capture = captured(10, b"abc", b"", b"defg", b"hij")
    assert not capture.truncated
    assert capture.text() == "abcdefghij"


def test_the_tail_follows_the_stream_across_many_chunks() -> None:
    capture = captured(6, *(bytes([c]) for c in b"0123456789"))
    assert capture.truncated
    assert capture.total == 10
    assert capture.text() == "012\n[... vigil: 4 bytes of output cut ...]\n789"


def test_a_multibyte_character_cut_in_half_becomes_a_replacement_character() -> None:
    capture = captured(4, "é".encode() * 4)
    assert capture.text().startswith("é\n[... vigil")
    assert capture.text().endswith("\né")
    odd = captured(3, "é".encode() * 4)
    assert "\ufffd" in odd.text()


def test_control_characters_and_terminal_escapes_are_replaced_but_lines_and_tabs_kept() -> None:
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable("win\r\nmac\rend") == "win\nmac\nend"
    assert printable("\x1b[2J\x00\x07\x7f\x9b") == "\ufffd[2J" + "\ufffd" * 4


def test_every_kept_byte_becomes_at_most_one_character() -> None:
    noise = bytes(range(256)) * 100
    capture = captured(1024, noise)
    body = capture.text().replace("\n[... vigil: 24576 bytes of output cut ...]\n", "")
    assert len(body) <= 1024


def test_a_limit_below_two_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 bytes"):
        OutputCapture(1)
