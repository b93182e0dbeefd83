/* py_time.c - datetime.fromisoformat of Python 3.11, as µs since the Unix epoch.
 *
 * Shaped after CPython 3.11's _datetimemodule.c (find the separator from the date's
 * form, parse the date up to it, then the time up to the first 'Z', '+' or '-'), because
 * its corners are what Python accepts: "T04" and "T0427" are times, "04:27:54X+01:00"
 * ignores the one character after a complete time when an offset follows, offsets need
 * only be under 24 h in total, and any one character (multi-byte UTF-8 included)
 * separates date and time.  Naive results are taken as UTC. */
#include "pycompat.h"

#include <string.h>

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Exactly n digits at p, or NULL. */
static const char *parse_digits(const char *p, int *out, size_t n)
{
    *out = 0;
    for (size_t i = 0; i < n; i++, p++) {
        if (!is_digit(*p))
            return NULL;
        *out = *out * 10 + (*p - '0');
    }
    return p;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Where the date ends (CPython's _find_isoformat_datetime_separator). */
static size_t date_length(const char *s, size_t len)
{
    if (len == 7)
        return 7;
    if (s[4] == '-') {
        if (s[5] != 'W')
            return 10;              /* YYYY-MM-DD */
        if (len > 8 && s[8] == '-') /* YYYY-Www-D, or YYYY-Www then '-' */
            return len > 10 && is_digit(s[10]) ? 8 : 10;
        return 8; /* YYYY-Www */
    }
    if (s[4] == 'W') { /* YYYYWww or YYYYWwwD */
        size_t idx = 7;
        while (idx < len && is_digit(s[idx]))
            idx++;
        if (idx < 9)
            return idx;
        return idx % 2 == 0 ? 7 : 8;
    }
    return 8; /* YYYYMMDD */
}

/* ISO year, week and weekday (Monday 1) to days since the epoch; -1 when out of range. */
static int iso_week_days(int year, int week, int wday, int64_t *days)
{
    int64_t jan4 = days_from_civil(year, 1, 4);
    int64_t jan1 = jan4 - 3;
    int jan1_wday = (int)(((jan1 + 3) % 7 + 7) % 7); /* 1970-01-01 was a Thursday (3) */
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int weeks = jan1_wday == 3 || (leap && jan1_wday == 2) ? 53 : 52;

    if (week < 1 || week > weeks || wday < 1 || wday > 7)
        return -1;
    int jan4_wday = (int)(((jan4 + 3) % 7 + 7) % 7);
    *days = jan4 - jan4_wday + (int64_t)(week - 1) * 7 + (wday - 1);
    return 0;
}

/* The date in s[0, end): YYYY-MM-DD, YYYYMMDD, YYYY-Www[-D], YYYYWww[D]. */
static int parse_date(const char *s, size_t end, int64_t *days)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int year, month, day;
    char buf[16];

    if (end >= sizeof buf)
        return -1;
    memcpy(buf, s, end); /* the date must not borrow digits from the time */
    buf[end] = '\0';
    p = parse_digits(buf, &year, 4);
    if (!p || year < 1)
        return -1;
    bool dash = *p == '-';
    p += dash;
    if (*p == 'W') {
        int week, wday = 1;
        if (!(p = parse_digits(p + 1, &week, 2)))
            return -1;
        if (p < buf + end && ((dash && *p++ != '-') || !(p = parse_digits(p, &wday, 1))))
            return -1;
        return p == buf + end ? iso_week_days(year, week, wday, days) : -1;
    }
    if (!(p = parse_digits(p, &month, 2)) || (dash && *p++ != '-') ||
        !(p = parse_digits(p, &day, 2)) || p != buf + end)
        return -1;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month < 1 || month > 12 || day < 1 || day > mdays[month - 1] + (month == 2 && leap))
        return -1;
    *days = days_from_civil(year, month, day);
    return 0;
}

/* HH[[:]MM[[:]SS[(.|,)f+]]] in [p, end) (CPython's parse_hh_mm_ss_ff): < 0 malformed,
 * 1 when one unparsed character remains before end, else 0. */
static int parse_hms(const char *p, const char *end, int hms[3], int *us)
{
    bool has_sep = true;

    hms[0] = hms[1] = hms[2] = *us = 0;
    for (int i = 0; i < 3; i++) {
        if (!(p = parse_digits(p, &hms[i], 2)))
            return -1;
        char c = *p++;
        if (i == 0)
            has_sep = c == ':';
        if (p >= end)
            return c != '\0';
        if (has_sep && c == ':')
            continue;
        if (c == '.' || c == ',')
            break;
        if (has_sep)
            return -1;
        p--;
    }
    size_t n = (size_t)(end - p) < 6 ? (size_t)(end - p) : 6;
    if (n == 0 || !(p = parse_digits(p, us, n)))
        return -1;
    for (size_t k = n; k < 6; k++)
        *us *= 10;
    while (is_digit(*p))
        p++;
    return *p != '\0';
}

/* The time and optional offset in text [p, end); writes µs since midnight, UTC. */
static int parse_time(const char *p, const char *end, int64_t *us_of_day)
{
    const char *tz = p;
    int hms[3], us, off[3], off_us, rv;

    while (tz < end && *tz != 'Z' && *tz != '+' && *tz != '-')
        tz++;
    if ((rv = parse_hms(p, tz, hms, &us)) < 0 || (tz == end && rv == 1))
        return -1;
    if (hms[0] > 23 || hms[1] > 59 || hms[2] > 59)
        return -1;
    *us_of_day = ((int64_t)hms[0] * 3600 + hms[1] * 60 + hms[2]) * 1000000 + us;
    if (tz == end)
        return 0;
    if (*tz == 'Z')
        return tz + 1 == end ? 0 : -1;
    if (parse_hms(tz + 1, end, off, &off_us) != 0)
        return -1;
    int64_t offset = ((int64_t)off[0] * 3600 + off[1] * 60 + off[2]) * 1000000 + off_us;
    if (offset >= INT64_C(86400000000))
        return -1;
    *us_of_day -= *tz == '-' ? -offset : offset;
    return 0;
}

int py_fromisoformat(const char *text, int64_t *us_out)
{
    size_t len = text ? strlen(text) : 0;
    int64_t days, us_of_day = 0;

    if (len < 7)
        return PW_EINVAL;
    size_t date_end = date_length(text, len);
    if (date_end > len || parse_date(text, date_end, &days) < 0)
        return PW_EINVAL;
    if (date_end < len) {
        /* any one character separates date and time, however many bytes it takes */
        unsigned char c = (unsigned char)text[date_end];
        size_t sep = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        if (date_end + sep >= len || parse_time(text + date_end + sep, text + len, &us_of_day) < 0)
            return PW_EINVAL;
    }
    *us_out = days * INT64_C(86400000000) + us_of_day;
    return 0;
}
