"""The checks a node's firmware image passes before anything touches the node (gateway/dm/nodefw/intelhex.py)."""

from __future__ import annotations

import pytest

from gateway.dm.nodefw.intelhex import HexError, check

APP = 0x7E00  # an ATmega328P's flash below a 512-byte optiboot


def rec(kind: int, address: int, data: bytes = b"") -> str:
    """One Intel HEX record with its checksum."""
    body = bytes([len(data), address >> 8, address & 0xFF, kind]) + data
    return ":" + (body + bytes([(-sum(body)) & 0xFF])).hex().upper()


EOF = rec(1, 0)


def image(*records: str) -> str:
    return "\n".join(records) + "\n"


def refused(text: str) -> HexError:
    with pytest.raises(HexError) as caught:
        check(text, application_bytes=APP)
    return caught.value


def test_a_sound_image_is_taken_with_its_size_and_end() -> None:
    text = image(rec(0, 0, bytes(range(16))), rec(0, 16, b"\x01\x02"), EOF)
    got = check(text, application_bytes=APP)
    assert (got.size, got.end, got.records) == (18, 18, 2)


def test_crlf_lowercase_blank_lines_and_address_records_are_fine() -> None:
    text = "\r\n".join(
        [
            rec(0, 0, b"\x0c\x94"),
            "",
            rec(4, 0, b"\x00\x00"),
            rec(2, 0, b"\x01\x00"),
            rec(0, 0, b"\xaa"),
            rec(5, 0, bytes(4)),
        ]
    ).lower()
    got = check(text + "\r\n" + EOF + "\r\n\r\n", application_bytes=APP)
    assert (got.size, got.end) == (3, 0x1001)  # the segment record put the last byte at 0x1000


def test_the_real_optiboot_built_here_is_refused_as_outside_the_application_area() -> None:
    # a bootloader image starts at 0x7E00: it must never be written through the bootloader itself
    err = refused(image(rec(0, 0x7E00, b"\x11\x24"), EOF))
    assert err.line == 1 and "0x7E00-0x7E01 lie outside the application area 0x0000-0x7DFF" in str(err)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("00000001FF", "does not start with ':'"),
        (":0000000G1FF", "'G' is not a hexadecimal digit"),
        (":00000001F", "odd number of hexadecimal digits"),
        (":0000", "too short for a record"),
        (":0400000001020304", "says 4 data bytes but holds 3"),
        (rec(0, 0x10, b"\x01\x02")[:-2] + "00", "checksum 0x00 is wrong (its bytes give 0x"),
        (rec(6, 0, b"\x01"), "record type 06 is not an Intel HEX record type"),
        (rec(4, 0, b"\x00"), "record type 04 must carry 2 bytes"),
        (rec(1, 0, b"\x00"), "the end-of-file record carries data"),
    ],
)
def test_a_bad_record_is_refused_naming_its_line(line: str, expected: str) -> None:
    err = refused(image(rec(0, 0, b"\x0c\x94"), line, EOF))
    assert err.line == 2
    assert str(err).startswith("line 2: ") and expected in str(err)


def test_a_flipped_digit_is_caught_by_the_checksum() -> None:
    good = rec(0, 0x20, b"\x0c\x94\x5c\x00")
    flipped = good[:12] + ("1" if good[12] != "1" else "2") + good[13:]
    err = refused(image(rec(0, 0, b"\x0c\x94"), rec(0, 2, b"\x00"), flipped, EOF))
    assert err.line == 3 and "checksum" in err.problem and "corrupted" in err.problem


def test_no_end_of_file_record_means_cut_short() -> None:
    err = refused(image(rec(0, 0, b"\x0c\x94"), rec(0, 2, b"\x00\x01")))
    assert err.line == 0 and "no end-of-file record" in str(err)


def test_records_after_the_end_of_file_record_are_refused() -> None:
    err = refused(image(rec(0, 0, b"\x0c\x94"), EOF, rec(0, 2, b"\x00")))
    assert err.line == 3 and "after the end-of-file record of line 2" in str(err)


def test_an_image_without_program_bytes_is_refused() -> None:
    assert "holds no program bytes" in str(refused(image(rec(4, 0, b"\x00\x00"), EOF)))
    assert "holds no program bytes" in str(refused(EOF))


def test_an_image_without_code_at_the_reset_vector_is_refused() -> None:
    assert "reset vector" in str(refused(image(rec(0, 0x100, b"\x01\x02"), EOF)))


def test_bytes_past_the_application_area_through_an_extended_address_are_refused() -> None:
    err = refused(image(rec(0, 0, b"\x0c\x94"), rec(4, 0, b"\x00\x01"), rec(0, 0, b"\x01"), EOF))
    assert err.line == 3 and "0x10000-0x10000 lie outside" in str(err)


def test_a_record_that_runs_into_the_bootloader_is_refused() -> None:
    err = refused(image(rec(0, 0, b"\x0c\x94"), rec(0, 0x7DF8, bytes(16)), EOF))
    assert err.line == 2 and "0x7DF8-0x7E07" in str(err)


def test_overlapping_records_are_refused_naming_both_lines() -> None:
    err = refused(image(rec(0, 0, b"\x0c\x94\x00\x00"), rec(0, 0x10, b"\x01"), rec(0, 2, b"\x05\x06"), EOF))
    assert err.line == 3 and "address 0x0002 was already written by line 1" in str(err)
