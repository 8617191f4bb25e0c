/*
 * Output helpers for the breaker CLI: a small JSON writer driven by the
 * protobuf-c descriptors (so that every field of a Reply or AuditRecord is
 * printed, and new fields appear without code here), UTC times, durations
 * and the names of modes, reason codes, statuses and record kinds.
 *
 * Text from the wire or the log (reasons, names, hosts) is never written raw
 * to a terminal: it goes through json_str(), which escapes control bytes and
 * replaces invalid UTF-8, so that a hostile reason cannot forge output lines
 * or send terminal escapes to an operator.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "bk_mode.h"
#include "bk_text.h"
#include "breaker.h"

const char *mode_name(int mode)
{
	const char *s = bk_mode_name(mode);

	return s ? s : "MODE_UNKNOWN";
}

const char *reason_name(int code)
{
	const char *s = code >= 0 ? bk_reason_name((unsigned)code) : NULL;

	return s ? s : "unknown_reason";
}

static const char *enum_name(const ProtobufCEnumDescriptor *d, int v)
{
	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);

	return ev ? ev->name : NULL;
}

/* "ERR_NOT_DURABLE"; NULL for a status this build does not know. */
const char *status_name(int status)
{
	return enum_name(&breaker__status__descriptor, status);
}

const char *kind_name(int kind)
{
	const char *s = enum_name(&breaker__audit_record__kind__descriptor, kind);

	return s ? s : "KIND_UNKNOWN";
}

uint64_t now_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* "2026-11-23T09:00:01.123Z" with 0 to 9 decimals. */
const char *fmt_time(char buf[BX_TIME_LEN], uint64_t wall_ns, int decimals)
{
	static const unsigned scale[10] = {
	    1000000000, 100000000, 10000000, 1000000, 100000, 10000, 1000, 100, 10, 1};
	time_t sec = (time_t)(wall_ns / 1000000000ull);
	unsigned frac = (unsigned)(wall_ns % 1000000000ull);
	struct tm tm;
	size_t n;

	decimals = decimals < 0 ? 0 : decimals > 9 ? 9 : decimals;
	if (!gmtime_r(&sec, &tm) ||
	    !(n = strftime(buf, BX_TIME_LEN, "%Y-%m-%dT%H:%M:%S", &tm))) {
		snprintf(buf, BX_TIME_LEN, "@%" PRIu64 "ns", wall_ns);
		return buf;
	}
	if (decimals > 0)
		snprintf(buf + n, BX_TIME_LEN - n, ".%0*uZ", decimals,
		         frac / scale[decimals] % 1000000000u);
	else
		snprintf(buf + n, BX_TIME_LEN - n, "Z");
	return buf;
}

/* "850 ns", "12.3 us", "4.56 ms", "2.35 s", "1h02m03s", "3d04h05m". */
const char *fmt_dur(char *buf, size_t len, uint64_t ns)
{
	uint64_t s = ns / 1000000000ull;

	if (ns < 1000)
		snprintf(buf, len, "%" PRIu64 " ns", ns);
	else if (ns < 1000000)
		snprintf(buf, len, "%.1f us", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, len, "%.2f ms", (double)ns / 1e6);
	else if (s < 60)
		snprintf(buf, len, "%.2f s", (double)ns / 1e9);
	else if (s < 86400)
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", s / 3600,
		         s / 60 % 60, s % 60);
	else
		snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h%02" PRIu64 "m", s / 86400,
		         s / 3600 % 24, s / 60 % 60);
	return buf;
}

/*
 * A measurement or a notional, readable: "0.416667", "600", "1250.5",
 * "1234568" (whole units from 1e5 up: no exponent for money), "inf".
 */
const char *fmt_num(char buf[BX_NUM_LEN], double v)
{
	if (isfinite(v) && fabs(v) >= 1e5 && fabs(v) < 1e15)
		snprintf(buf, BX_NUM_LEN, "%.0f", v);
	else
		snprintf(buf, BX_NUM_LEN, "%.6g", v);
	return buf;
}

/* A utilisation as a whole percentage: 0.824 -> "82%"; "?%" if not finite. */
const char *fmt_pct(char buf[BX_NUM_LEN], double ratio)
{
	if (isfinite(ratio) && fabs(ratio) < 1e13)
		snprintf(buf, BX_NUM_LEN, "%.0f%%", ratio * 100);
	else
		snprintf(buf, BX_NUM_LEN, "?%%");
	return buf;
}

/*
 * s with backslash, C0/C1 controls and DEL escaped and invalid UTF-8
 * replaced; as a JSON string literal (quoted, '"' escaped) when json is set.
 */
static int put_esc(FILE *f, const char *s, bool json)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	int n, cols = 0;
	unsigned cp;

	if (json)
		cols += fprintf(f, "\"");
	for (; *p; p += n ? n : 1) {
		n = bk_utf8_decode(p, &cp);
		if (n == 0)
			cols += fprintf(f, "\\ufffd");
		else if (cp == '\\' || (json && cp == '"'))
			cols += fprintf(f, "\\%c", (int)cp);
		else if (cp == '\n')
			cols += fprintf(f, "\\n");
		else if (cp == '\t')
			cols += fprintf(f, "\\t");
		else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
			cols += fprintf(f, "\\u%04x", cp);
		else {
			fwrite(p, 1, (size_t)n, f);
			cols++; /* a code point: one column, near enough */
		}
	}
	if (json)
		cols += fprintf(f, "\"");
	return cols;
}

/*
 * s for a Markdown table cell: escaped like put_text, and Markdown's own
 * characters and '|' backslashed, so that text from the log can neither
 * break the table nor turn into links, HTML or emphasis. Newlines become
 * spaces: a cell is one line.
 */
int put_md(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	int n, cols = 0;
	unsigned cp;

	for (; *p; p += n ? n : 1) {
		n = bk_utf8_decode(p, &cp);
		if (n == 0)
			cols += fprintf(f, "\ufffd");
		else if (cp == '\n' || cp == '\t' || cp == '\r')
			cols += fprintf(f, " ");
		else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
			cols += fprintf(f, "\\u%04x", cp);
		else if (cp < 0x80 && strchr("\\|`*_[]<>#~&", (int)cp))
			cols += fprintf(f, "\\%c", (int)cp);
		else {
			fwrite(p, 1, (size_t)n, f);
			cols++;
		}
	}
	return cols;
}

int json_str(FILE *f, const char *s)
{
	return put_esc(f, s, true);
}

int put_text(FILE *f, const char *s)
{
	return put_esc(f, s, false);
}

/*
 * A name (strategy, user, host) bare when it is plain, else as a JSON string.
 * Returns the columns it takes.
 */
int put_name(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	for (; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\')
			break;
	if (*p || !s || !*s)
		return json_str(f, s);
	fputs(s, f);
	return (int)strlen(s);
}

/* Spaces up to width from cols. */
void put_pad(FILE *f, int cols, int width)
{
	for (; cols < width; cols++)
		fputc(' ', f);
}

static void json_enum(FILE *f, const ProtobufCEnumDescriptor *d, int v)
{
	const char *name;

	if (d == &breaker__mode__descriptor)
		name = bk_mode_name(v);
	else if (d == &breaker__reason_code__descriptor)
		name = v >= 0 ? bk_reason_name((unsigned)v) : NULL;
	else
		name = enum_name(d, v);
	if (name)
		json_str(f, name);
	else
		fprintf(f, "%d", v);
}

static void json_value(FILE *f, const ProtobufCFieldDescriptor *fd, const void *p)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_BOOL:
		fputs(*(const protobuf_c_boolean *)p ? "true" : "false", f);
		break;
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		fprintf(f, "%" PRId32, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		fprintf(f, "%" PRIu32, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		fprintf(f, "%" PRId64, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		fprintf(f, "%" PRIu64, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE: {
		double d = fd->type == PROTOBUF_C_TYPE_FLOAT ? *(const float *)p
		                                             : *(const double *)p;
		if (isfinite(d))
			fprintf(f, "%.17g", d);
		else
			fputs("null", f);
		break;
	}
	case PROTOBUF_C_TYPE_ENUM:
		json_enum(f, fd->descriptor, *(const int *)p);
		break;
	case PROTOBUF_C_TYPE_STRING:
		json_str(f, *(char *const *)p);
		break;
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;

		fputc('"', f);
		for (size_t i = 0; i < b->len; i++)
			fprintf(f, "%02x", b->data[i]);
		fputc('"', f);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		json_msg(f, *(const ProtobufCMessage *const *)p);
		break;
	}
}

static size_t elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return 4;
	}
}

static bool field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
	const char *base = (const char *)m;

	if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + fd->quantifier_offset) == fd->id;
	if (fd->type == PROTOBUF_C_TYPE_STRING || fd->type == PROTOBUF_C_TYPE_MESSAGE)
		return *(void *const *)(base + fd->offset) != NULL;
	if (fd->label == PROTOBUF_C_LABEL_OPTIONAL)
		return *(const protobuf_c_boolean *)(base + fd->quantifier_offset);
	return true;
}

/* Wall-clock fields ("wall_ns", "since_wall_ns") also get "<stem>_utc". */
static void json_utc(FILE *f, const ProtobufCFieldDescriptor *fd, const void *p)
{
	size_t n = strlen(fd->name);
	char t[BX_TIME_LEN];

	if (fd->type != PROTOBUF_C_TYPE_UINT64 || n < 7 ||
	    strcmp(fd->name + n - 7, "wall_ns") != 0)
		return;
	fprintf(f, ",\"%.*s_utc\":\"%s\"", (int)(n - 3), fd->name,
	        fmt_time(t, *(const uint64_t *)p, 9));
}

/* Every present field of m, by its proto name; repeated fields always. */
void json_msg(FILE *f, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	bool first = true;

	fputc('{', f);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		const void *p = base + fd->offset;

		if (fd->label != PROTOBUF_C_LABEL_REPEATED && !field_present(m, fd))
			continue;
		fprintf(f, "%s\"%s\":", first ? "" : ",", fd->name);
		first = false;
		if (fd->label != PROTOBUF_C_LABEL_REPEATED) {
			json_value(f, fd, p);
			json_utc(f, fd, p);
			continue;
		}
		size_t n = *(const size_t *)(base + fd->quantifier_offset);
		const char *arr = *(const char *const *)p;

		fputc('[', f);
		for (size_t j = 0; j < n; j++) {
			if (j)
				fputc(',', f);
			json_value(f, fd, arr + j * elem_size(fd->type));
		}
		fputc(']', f);
	}
	fputc('}', f);
}

void json_reply(FILE *f, const Breaker__Reply *r)
{
	json_msg(f, &r->base);
	fputc('\n', f);
}
