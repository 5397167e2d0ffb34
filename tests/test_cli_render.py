"""The renderer on its own: durations, times in a zone, which columns a narrow width drops, plain text and tsv/csv."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from commands._render import Column, delimited, header, infer_column, layout, plain_table, show_duration, show_time

UTC = dt.timezone.utc


@pytest.mark.parametrize("seconds, shown", [
    (0, "0s"), (45, "45s"), (60, "1m"), (900, "15m"), (5400, "1h30m"), (7200, "2h"), (90_061, "1d1h"),
    ("3600", "1h"), ("2.5", "2.5s"), (None, ""), ("soon", "soon"),
])
def test_seconds_are_shown_as_durations(seconds, shown):
    assert show_duration(seconds) == shown


def test_an_instant_is_shown_to_the_second_in_the_zone_asked_for():
    opened = "2026-12-01T23:30:05.188633+00:00"
    assert show_time(opened, UTC) == "2026-12-01 23:30:05"
    assert show_time(opened, ZoneInfo("Europe/Malta")) == "2026-12-02 00:30:05"
    assert show_time(dt.datetime(2026, 7, 1, 12, 0, tzinfo=UTC), ZoneInfo("Europe/Malta")) == "2026-07-01 14:00:00"
    assert show_time("2026-11-23", UTC) == "2026-11-23"  # a date is not an instant


def test_the_zone_is_named_once_in_a_time_columns_header():
    assert header(Column("opened_at", "time"), UTC) == "opened_at (UTC)"
    assert header(Column("opened_at", "time"), ZoneInfo("Europe/Malta")) == "opened_at (Europe/Malta)"
    assert header(Column("idle_timeout_s", "duration"), UTC) == "idle_timeout"


def test_roles_are_guessed_from_bare_names():
    assert [infer_column(k).role for k in ("session_id", "opened_at", "amount_in", "times_seen", "ttl_s", "detail")] \
        == ["id", "time", "amount", "count", "duration", "text"]
    assert infer_column("transfers_per_s").role == "count"


COLUMNS = [Column("id", "id", 0), Column("note", "text", 1), Column("player", "id", 2), Column("total", "amount", 0)]
HEADERS = ["id", "note", "player", "total"]
CELLS = [["s" + "a" * 30, "a long explanation of what went wrong here " * 2, "player-0001", "1234567.89"]]


def test_a_narrow_width_drops_the_least_useful_column_first_and_wraps_text_last():
    wide = layout(COLUMNS, HEADERS, CELLS, 200, overhead=0, per_column=2)
    assert [i for i, _ in wide] == [0, 1, 2, 3]
    narrow = layout(COLUMNS, HEADERS, CELLS, 80, overhead=0, per_column=2)
    assert [i for i, _ in narrow] == [0, 1, 3]  # the player went; the note wraps
    assert dict(narrow)[1] < len(CELLS[0][1])


def test_ids_and_amounts_are_never_cut_even_when_nothing_else_can_go():
    text = plain_table(COLUMNS, HEADERS, CELLS, 30)
    assert CELLS[0][0] in text and "1234567.89" in text
    assert "…" not in text


def test_plain_text_right_aligns_amounts_and_draws_no_box():
    rows = [["s1", "x", "p", "5.00"], ["s2", "y", "q", "1234.50"]]
    text = plain_table(COLUMNS, HEADERS, rows, None)
    lines = text.splitlines()
    assert lines[1].endswith("   5.00") and lines[2].endswith("1234.50")
    assert not set(text) & set("─│┃━┏┓┗┛┌┐└┘├┤┬┴┼")


def test_tsv_and_csv_carry_every_column_with_raw_values():
    rows = [{"id": "s1", "note": "tab\there, \"quoted\"\nnew line", "player": "P1", "total": "5.00",
             "at": dt.datetime(2026, 12, 1, 23, 30, 5, tzinfo=UTC)}]
    columns = [*COLUMNS, Column("at", "time")]
    assert delimited(columns, rows, "tsv").splitlines() == [
        "id\tnote\tplayer\ttotal\tat",
        "s1\ttab here, \"quoted\" new line\tP1\t5.00\t2026-12-01T23:30:05+00:00",
    ]
    assert delimited(columns, rows, "csv").splitlines()[1].startswith('s1,"tab\there, ""quoted""')
