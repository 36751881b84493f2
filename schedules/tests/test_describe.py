"""Cron expressions in plain words: the common ones as a person would say them, the rest honestly
(exactly the times cronsim fires), and nothing for what the schedules refuse."""

from __future__ import annotations

import pytest

from schedules.describe import describe


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        # steps that divide the hour or the day evenly
        ("* * * * *", "Every minute"),
        ("*/5 * * * *", "Every 5 minutes"),
        ("0,30 * * * *", "Every 30 minutes"),
        ("0 * * * *", "Every hour"),
        ("0 */2 * * *", "Every 2 hours"),
        ("*/15 9-17 * * *", "Every 15 minutes from 09:00 to 17:59"),
        ("*/30 0-6 * * *", "Every 30 minutes from 00:00 to 06:59"),
        ("0 8-18 * * *", "Every hour from 08:00 to 18:00"),
        # times of day
        ("0 9 * * *", "At 09:00 every day"),
        ("30 2 * * *", "At 02:30 every day"),
        ("0 8,20 * * *", "At 08:00 and 20:00 every day"),
        ("0 9-17/2 * * *", "At 09:00, 11:00, 13:00, 15:00 and 17:00 every day"),
        ("30 * * * *", "At minute 30 past every hour"),
        ("15,45 * * * *", "At minutes 15 and 45 past every hour"),
        ("30 9-17 * * *", "At minute 30 past every hour from 09:00 to 17:59"),
        ("*/15 8,12,16 * * *", "Every 15 minutes in hours 8, 12 and 16"),
        # a step that does not divide the hour restarts at each hour: said as the minutes it fires
        ("*/7 * * * *", "At minutes 0, 7, 14, …, 56 past every hour"),
        ("*/90 * * * *", "Every hour"),
        # days of the week, ranges, lists and names
        ("0 9 * * 1-5", "At 09:00 on Monday to Friday"),
        ("0 9 * * MON-FRI", "At 09:00 on Monday to Friday"),
        ("0 9 * * 1,3,5", "At 09:00 on Monday, Wednesday and Friday"),
        ("0 0 * * 6,0", "At 00:00 on Saturday and Sunday"),
        ("5 4 * * sun", "At 04:05 on Sunday"),
        ("0 9 * * 7", "At 09:00 on Sunday"),
        ("0 0 * * 1-7", "At 00:00 every day"),
        ("0 12 * * 5L", "At 12:00 on the last Friday of the month"),
        ("0 12 * * 1#2", "At 12:00 on the second Monday of the month"),
        # days of the month and months
        ("30 2 1 * *", "At 02:30 on day 1 of the month"),
        ("0 9 1,15 * *", "At 09:00 on days 1 and 15 of the month"),
        ("0 0 L * *", "At 00:00 on the last day of the month"),
        ("0 0 LW * *", "At 00:00 on the last weekday of the month"),
        ("0 0 1 JAN *", "At 00:00 on 1 January"),
        ("0 0 29 2 *", "At 00:00 on 29 February"),
        ("0 0 1 */3 *", "At 00:00 on day 1 of January, April, July and October"),
        ("0 0 * 12 *", "At 00:00 every day in December"),
        ("0 9 * 1-3,6 *", "At 09:00 every day in January to March and June"),
        ("*/15 9-17 * JAN-MAR MON", "Every 15 minutes from 09:00 to 17:59 on Monday in January to March"),
        # Debian cron: both day fields restricted is either; one starting with * is both
        ("0 9 1,15 * MON", "At 09:00 on days 1 and 15 of the month and on Monday"),
        ("0 9 */2 * MON", "At 09:00 on days 1, 3, 5, …, 31 of the month, if it is Monday"),
        # seconds first (6 fields)
        ("*/10 * * * * *", "Every 10 seconds"),
        ("0 30 9 * * *", "At 09:30 every day"),
        ("15 30 9 * * *", "At 09:30:15 every day"),
        ("30 */15 * * * *", "Every 15 minutes, at second 30"),
        # the usual nicknames
        ("@hourly", "Every hour"),
        ("@daily", "At 00:00 every day"),
        ("@weekly", "At 00:00 on Sunday"),
        ("@monthly", "At 00:00 on day 1 of the month"),
        ("@yearly", "At 00:00 on 1 January"),
    ],
)
def test_it_says_an_expression_in_plain_words(expr, words):
    assert describe(expr) == words


@pytest.mark.parametrize(
    "expr", ["", "nope", "99 * * * *", "0 0 ? * *", "0 0 1 * * 2000", "@reboot", None, 5]
)
def test_it_has_no_words_for_what_cron_refuses(expr):
    assert describe(expr) is None
