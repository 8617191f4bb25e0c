#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bk_config.h"
#include "bk_etcd_kv.h"
#include "bk_group.h"
#include "bk_mode.h"
#include "bk_state.h"

static void default_dirs(struct bk_config *cfg)
{
	const char *xdg_run = getenv("XDG_RUNTIME_DIR");
	const char *xdg_state = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");

	if (geteuid() == 0) {
		snprintf(cfg->run_dir, sizeof(cfg->run_dir), "/run/breaker");
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "/var/lib/breaker/%s",
		         cfg->instance);
		return;
	}
	if (xdg_run && *xdg_run == '/')
		snprintf(cfg->run_dir, sizeof(cfg->run_dir), "%s/breaker", xdg_run);
	else
		snprintf(cfg->run_dir, sizeof(cfg->run_dir), "/tmp/breaker-%u",
		         (unsigned)geteuid());
	if (xdg_state && *xdg_state == '/')
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s/breaker/%s",
		         xdg_state, cfg->instance);
	else if (home && *home == '/')
		snprintf(cfg->state_dir, sizeof(cfg->state_dir),
		         "%s/.local/state/breaker/%s", home, cfg->instance);
	else
		snprintf(cfg->state_dir, sizeof(cfg->state_dir),
		         "/tmp/breaker-%u/state/%s", (unsigned)geteuid(), cfg->instance);
}

/* Defaults for whichever of run_dir/state_dir the file did not set. */
static void default_dirs_keep(struct bk_config *cfg, int keep_run, int keep_state)
{
	char run[PATH_MAX], state[PATH_MAX];

	memcpy(run, cfg->run_dir, sizeof(run));
	memcpy(state, cfg->state_dir, sizeof(state));
	default_dirs(cfg);
	if (keep_run)
		memcpy(cfg->run_dir, run, sizeof(run));
	if (keep_state)
		memcpy(cfg->state_dir, state, sizeof(state));
}

void bk_config_derive(struct bk_config *cfg)
{
	unsigned set = cfg->explicit_set;

	snprintf(cfg->audit_path, sizeof(cfg->audit_path), "%s/audit.log",
	         cfg->state_dir);
	if (!(set & BK_CFG_SET_CMD_URL))
		snprintf(cfg->cmd_url, sizeof(cfg->cmd_url), "ipc://%s/%s.cmd",
		         cfg->run_dir, cfg->instance);
	if (!(set & BK_CFG_SET_PUB_URL))
		snprintf(cfg->pub_url, sizeof(cfg->pub_url), "ipc://%s/%s.pub",
		         cfg->run_dir, cfg->instance);
	if (!(set & BK_CFG_SET_LOCAL_URL))
		snprintf(cfg->local_url, sizeof(cfg->local_url), "unix://%s/%s.sock",
		         cfg->run_dir, cfg->instance);
}

static int instance_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= BK_INSTANCE_MAX)
		return 0;
	for (; *s; s++)
		if (!(*s == '-' || *s == '_' || *s == '.' || (*s >= '0' && *s <= '9') ||
		      (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
			return 0;
	return 1;
}

int bk_config_defaults(struct bk_config *cfg, const char *instance)
{
	struct bk_acl_lists *resume = &cfg->acl[BK_ACT_RESUME],
	                    *report = &cfg->acl[BK_ACT_REPORT];

	memset(cfg, 0, sizeof(*cfg));
	cfg->venues.session_down = true; /* engines state it: on by default */
	cfg->venues.action = BK_HALTED;
	if (!instance)
		instance = "default";
	if (!instance_valid(instance))
		return -EINVAL;
	snprintf(cfg->instance, sizeof(cfg->instance), "%s", instance);
	default_dirs(cfg);
	bk_config_derive(cfg);
	cfg->tick_ns = 100 * 1000;
	cfg->idle_tick_ns = 2 * 1000 * 1000;
	/* 50 ms: safe on a shared host; lower it on a dedicated one */
	cfg->heartbeat_bound_ns = 50 * 1000 * 1000;
	/* [cluster] timings from etcd 3.4's defaults (election timeout 1000 ms,
	 * heartbeat 100 ms): docs/firmwide.md says why */
	cfg->cluster_t1_ns = 3500ull * 1000 * 1000;
	cfg->cluster_t2_ns = 5000ull * 1000 * 1000;
	cfg->cluster_probe_ns = 100ull * 1000 * 1000;
	cfg->cluster_probe_timeout_ns = 300ull * 1000 * 1000;
	cfg->cluster_lease_s = 5;
	cfg->cluster_anchor_period_ns = 10000ull * 1000 * 1000;
	cfg->cluster_anchor_keep = 1000;
	cfg->max_msg = 16 * 1024;
	cfg->reason_max = 1024;
	cfg->shm_mode = 0644;
	cfg->tel_mode = 0660;
	bk_rules_defaults(&cfg->rules);
	cfg->sock_mode = 0660;
	cfg->idle_timeout_ms = 10 * 1000;
	cfg->max_conns_per_uid = 32;
	/* Monitoring is on by default, and only on loopback. */
	snprintf(cfg->metrics_listen, sizeof(cfg->metrics_listen), "127.0.0.1:9464");
	/* Resume is restricted: by default only the daemon's own user and root. */
	resume->uids[resume->n_uids++] = geteuid();
	if (geteuid() != 0)
		resume->uids[resume->n_uids++] = 0;
	cfg->acl[BK_ACT_FORCE] = *resume;
	bk_config_incident_defaults(cfg);
	/* Reporting: who may write the telemetry segment (0660: its owner and
	 * group, which are ours). */
	report->uids[report->n_uids++] = geteuid();
	report->gids[report->n_gids++] = getegid();
	/* Tripping is easy: anyone who can reach the command socket. */
	cfg->auth_any = 1u << BK_ACT_TRIP | 1u << BK_ACT_KILL;
	cfg->confirm_window_s = 120;
	return 0;
}

void bk_config_acl(const struct bk_config *cfg, enum bk_act act, struct bk_acl *acl)
{
	/* an act out of range gets force's lists, the strictest */
	unsigned i = (unsigned)act < BK_ACT_COUNT ? (unsigned)act : BK_ACT_FORCE;
	const struct bk_acl_lists *l = &cfg->acl[i];

	*acl = (struct bk_acl){l->uids, l->n_uids, l->gids, l->n_gids,
	                       (cfg->auth_any >> i & 1u) != 0};
}

const char *bk_act_name(enum bk_act act)
{
	static const char *const names[BK_ACT_COUNT] = {"trip", "kill", "resume", "force",
	                                                "report"};

	return (unsigned)act < BK_ACT_COUNT ? names[act] : "?";
}

enum bk_role bk_config_role(const struct bk_config *cfg, const char *cn)
{
	if (!cn || !*cn)
		return BK_ROLE_NONE;
	for (int i = 0; i < cfg->n_tls_roles; i++)
		if (strcmp(cfg->tls_roles[i].cn, cn) == 0)
			return (enum bk_role)cfg->tls_roles[i].role;
	return BK_ROLE_NONE;
}

const char *bk_role_name(enum bk_role role)
{
	return role == BK_ROLE_OPERATOR ? "operator"
	       : role == BK_ROLE_TRADER ? "trader"
	       : role == BK_ROLE_ENGINE ? "engine"
	                                : "none";
}

bool bk_config_remote(const struct bk_config *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_remote; i++)
		if (strcmp(cfg->remote[i], name) == 0)
			return true;
	return false;
}

int bk_listen_parse(const char *v, bool *loopback)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon;
	struct in6_addr a6;
	struct in_addr a4;
	uint64_t port;
	size_t n;
	char *end;

	colon = *v == '[' ? strstr(v, "]:") : strrchr(v, ':');
	if (!colon || (n = (size_t)(colon - v)) == 0 || n >= sizeof(host))
		return -EINVAL;
	if (*v == '[')
		colon++;
	if (!colon[1] || colon[1] == '-' || colon[1] == '+')
		return -EINVAL;
	errno = 0;
	port = strtoull(colon + 1, &end, 10);
	if (errno || *end || port < 1 || port > 65535)
		return -EINVAL;
	/* numeric only: a name could resolve to anything, loopback or not */
	if (*v == '[') {
		memcpy(host, v + 1, n - 1);
		host[n - 1] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return -EINVAL;
		*loopback = IN6_IS_ADDR_LOOPBACK(&a6);
		return 0;
	}
	memcpy(host, v, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, &a4) != 1)
		return -EINVAL;
	*loopback = (ntohl(a4.s_addr) >> 24) == 127;
	return 0;
}

void bk_config_metrics_url(const struct bk_config *cfg, char *url, size_t len)
{
	if (!cfg->metrics_listen[0])
		snprintf(url, len, "%s", "");
	else
		snprintf(url, len, "http://%s", cfg->metrics_listen);
}

/* ---- INI parsing --------------------------------------------------------- */

struct load_ctx {
	struct bk_config cfg; /* work on a copy: a bad file changes nothing */
	char *err;
	size_t errlen;
	FILE *file;
	int line; /* Debian's inih passes no line numbers: count them here */
	int failed;
	int pass;              /* 1: everything but [rules:NAME]; 2: only [rules:NAME] */
	int metrics_line;      /* of [metrics] listen, for the loopback check's message */
	int tcp_line;          /* of [commands] tcp_url, for the transport checks */
	unsigned acl_set;      /* bit per enum bk_act: the file gave its lists */
	unsigned acl_any;      /* bit per enum bk_act: ... and one said "any" */
	struct seen_key *seen; /* every "section]name" so far, for duplicates */
	size_t n_seen, cap_seen;
};

struct seen_key {
	char key[128]; /* "section]name": ']' cannot be in a section name */
	int line;
};

static int fail(struct load_ctx *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct load_ctx *c, int line, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "line %d: %s", line, what);
	c->failed = 1;
	return 0; /* stop inih at the first error */
}

/* Digits only, in base 10 or 8: no sign, space, "0x" or leading-zero octal
 * that strtoull(..., 0) would read ("0100" is not 64). */
static int parse_base(const char *v, int base, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long x;

	if (*v == '\0')
		return -EINVAL;
	for (const char *p = v; *p; p++)
		if (*p < '0' || *p > (base == 8 ? '7' : '9'))
			return -EINVAL;
	errno = 0;
	x = strtoull(v, &end, base);
	if (errno || *end || x < min || x > max)
		return -ERANGE;
	*out = x;
	return 0;
}

/* Numbers are decimal, everywhere. */
static int parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	return parse_base(v, 10, min, max, out);
}

/* File modes are octal, as chmod(1) writes them ("0660", "660"). */
static int parse_mode(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	return parse_base(v, 8, min, max, out);
}

static int set_str(char *dst, size_t len, const char *v)
{
	if (strlen(v) >= len)
		return -ENAMETOOLONG;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/* A user or group name to its id, through NSS. 0 or -ENOENT. */
static int name_id(const char *name, bool group, unsigned *id)
{
	char buf[4096];
	int rv;

	if (group) {
		struct group gr, *res = NULL;
		rv = getgrnam_r(name, &gr, buf, sizeof(buf), &res);
		if (rv == 0 && res)
			*id = (unsigned)gr.gr_gid;
		return rv == 0 && res ? 0 : -ENOENT;
	}
	struct passwd pw, *res = NULL;
	rv = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (rv == 0 && res)
		*id = (unsigned)pw.pw_uid;
	return rv == 0 && res ? 0 : -ENOENT;
}

/*
 * Comma-separated ids or names (resolved now, at load), or "any" where
 * allowed. Sets *any when "any" was given; an unknown name is an error.
 */
static int parse_ids(const char *v, unsigned *ids, int *n, bool group, bool *any)
{
	char buf[1024], *save = NULL, *tok;
	uint64_t x;

	if (set_str(buf, sizeof(buf), v))
		return -EINVAL;
	*n = 0;
	for (tok = strtok_r(buf, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save)) {
		if (strcmp(tok, "any") == 0 && any) {
			*any = true;
			continue;
		}
		if (*n >= BK_AUTH_MAX)
			return -EINVAL;
		if (isdigit((unsigned char)*tok)) {
			if (parse_u64(tok, 0, UINT32_MAX - 1, &x))
				return -EINVAL;
			ids[(*n)++] = (unsigned)x;
		} else if (name_id(tok, group, &ids[*n]) == 0) {
			(*n)++;
		} else {
			return -ENOENT;
		}
	}
	/* an empty list would quietly shut everyone out: leave the key out */
	return *n || (any && *any) ? 0 : -EINVAL;
}

/* "a, b, c" into names: each a valid strategy name (bk_strategy_name_valid). */
static int parse_strategies(char (*names)[BK_NAME_MAX], int *n, const char *v)
{
	char buf[16384], *save = NULL, *tok;

	if (set_str(buf, sizeof(buf), v))
		return -EINVAL;
	*n = 0;
	for (tok = strtok_r(buf, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save)) {
		if (*n >= BK_CFG_STRATEGIES || !bk_strategy_name_valid(tok) ||
		    set_str(names[*n], BK_NAME_MAX, tok))
			return -EINVAL;
		(*n)++;
	}
	return 0;
}

/* "true" or "false", nothing else. */
static int parse_bool(const char *v, bool *out)
{
	if (strcmp(v, "true") && strcmp(v, "false"))
		return -EINVAL;
	*out = strcmp(v, "true") == 0;
	return 0;
}

static int parse_double(const char *v, double min, double max, double *out)
{
	char *end;
	double x;

	/* decimal only: strtod would read hex ("0x10") too */
	if (strpbrk(v, "xXpP"))
		return -EINVAL;
	errno = 0;
	x = strtod(v, &end);
	if (errno || end == v || *end || !(x >= min && x <= max)) /* NaN fails too */
		return -ERANGE;
	*out = x;
	return 0;
}

enum rule_kind {
	RULE_BOOL,  /* true or false */
	RULE_UINT,  /* decimal in [min, max] into a uint32_t */
	RULE_LIMIT, /* a decimal number in [min, max], divided by div; enables the rule */
	RULE_MODE,  /* a mode name, one of the modes bits */
	RULE_SCOPE, /* global or strategy */
};

/* The keys of one rule ("reject_rate.max"): where each goes in struct bk_rule_cfg. */
static const struct rule_key_def {
	const char *name;
	enum rule_kind kind;
	size_t off;
	double min, max, div;
	unsigned modes; /* RULE_MODE: bit per enum bk_mode allowed */
} rule_keys[] = {
#define RULE(m) offsetof(struct bk_rule_cfg, m)
    {"enabled", RULE_BOOL, RULE(enabled), 0, 0, 0, 0},
    {"max", RULE_LIMIT, RULE(max), 0, 1e18, 1, 0},
    {"max_pct", RULE_LIMIT, RULE(max_pct), 0, 100, 100, 0},
    {"window_ms", RULE_UINT, RULE(window_ms), 1, 3600000, 0, 0},
    {"min_orders", RULE_UINT, RULE(min_orders), 0, 1000000000, 0, 0},
    {"action", RULE_MODE, RULE(action), 0, 0, 0,
     1u << BK_CAUTIOUS | 1u << BK_REDUCE_ONLY | 1u << BK_HALTED},
    {"scope", RULE_SCOPE, RULE(global), 0, 0, 0, 0},
    {"cooldown_ms", RULE_UINT, RULE(cooldown_ms), 0, 86400000, 0, 0},
    /* a cooldown never goes back to ACTIVE on its own */
    {"cooldown_to", RULE_MODE, RULE(cooldown_to), 0, 0, 0,
     1u << BK_CAUTIOUS | 1u << BK_REDUCE_ONLY},
    /* 0: after a forced resume, trip again only on worsening */
    {"rearm_ms", RULE_UINT, RULE(rearm_ms), 0, 86400000, 0, 0},
#undef RULE
};

#define RULE_FIELD_IS(m, t) (sizeof(((struct bk_rule_cfg *)0)->m) == sizeof(t))
_Static_assert(RULE_FIELD_IS(enabled, bool) && RULE_FIELD_IS(global, bool) &&
                   RULE_FIELD_IS(max, double) && RULE_FIELD_IS(max_pct, double) &&
                   RULE_FIELD_IS(window_ms, uint32_t) &&
                   RULE_FIELD_IS(min_orders, uint32_t) &&
                   RULE_FIELD_IS(cooldown_ms, uint32_t) &&
                   RULE_FIELD_IS(rearm_ms, uint32_t) && RULE_FIELD_IS(action, uint8_t) &&
                   RULE_FIELD_IS(cooldown_to, uint8_t),
               "rule_keys' kinds match struct bk_rule_cfg");

/* "reject_rate.max = 0.2": one field of one rule. 0, -ENOENT or -EINVAL. */
static int rule_key(struct bk_rule_cfg *rules, const char *key, const char *v)
{
	const struct rule_key_def *k = NULL;
	const char *dot = strchr(key, '.');
	char name[32], *field;
	uint64_t x;
	double d;
	int id, m;

	if (!dot || (size_t)(dot - key) >= sizeof(name))
		return -ENOENT;
	memcpy(name, key, (size_t)(dot - key));
	name[dot - key] = '\0';
	if ((id = bk_rule_parse(name)) < 0)
		return -ENOENT;
	for (size_t i = 0; !k && i < sizeof(rule_keys) / sizeof(rule_keys[0]); i++)
		if (strcmp(dot + 1, rule_keys[i].name) == 0)
			k = &rule_keys[i];
	if (!k)
		return -ENOENT;
	field = (char *)&rules[id] + k->off;
	switch (k->kind) {
	case RULE_BOOL:
		return parse_bool(v, (bool *)field);
	case RULE_UINT:
		if (parse_u64(v, (uint64_t)k->min, (uint64_t)k->max, &x))
			return -EINVAL;
		*(uint32_t *)field = (uint32_t)x;
		return 0;
	case RULE_LIMIT:
		if (parse_double(v, k->min, k->max, &d))
			return -EINVAL;
		*(double *)field = d / k->div;
		rules[id].enabled = true;
		return 0;
	case RULE_MODE:
		if ((m = bk_mode_parse(v)) < 0 || !(k->modes & 1u << m))
			return -EINVAL;
		*(uint8_t *)field = (uint8_t)m;
		return 0;
	case RULE_SCOPE:
		if (strcmp(v, "global") && strcmp(v, "strategy"))
			return -EINVAL;
		*(bool *)field = strcmp(v, "global") == 0;
		return 0;
	}
	return -EINVAL;
}

static int parse_warn(struct bk_rules_cfg *rc, const char *v)
{
	double lv[BK_WARN_LEVELS];
	char buf[128], *save = NULL, *tok;
	int n = 0;

	if (set_str(buf, sizeof(buf), v))
		return -EINVAL;
	for (tok = strtok_r(buf, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save)) {
		if (n >= BK_WARN_LEVELS || parse_double(tok, 0.01, 1, &lv[n]) ||
		    (n && lv[n] <= lv[n - 1]))
			return -EINVAL;
		n++;
	}
	if (n != BK_WARN_LEVELS)
		return -EINVAL;
	memcpy(rc->warn, lv, sizeof(lv));
	return 0;
}

static struct bk_rule_cfg *override_for(struct bk_rules_cfg *rc, const char *name)
{
	for (int i = 0; i < rc->n_over; i++)
		if (strcmp(rc->over[i].name, name) == 0)
			return rc->over[i].rule;
	if (rc->n_over >= BK_RULE_OVERRIDES || strlen(name) >= BK_NAME_MAX)
		return NULL;
	snprintf(rc->over[rc->n_over].name, BK_NAME_MAX, "%s", name);
	memcpy(rc->over[rc->n_over].rule, rc->dflt, sizeof(rc->dflt));
	return rc->over[rc->n_over++].rule;
}

/* An enabled rule needs a limit: a threshold of 0 would trip on anything. */
static int rules_invalid(const struct bk_rules_cfg *rc, char *err, size_t errlen)
{
	for (int o = -1; o < rc->n_over; o++) {
		const struct bk_rule_cfg *rules = o < 0 ? rc->dflt : rc->over[o].rule;
		for (int id = 0; id < BK_RULE_COUNT; id++) {
			const struct bk_rule_cfg *r = &rules[id];
			if (!r->enabled || r->max > 0 ||
			    (id == BK_RULE_DRAWDOWN && r->max_pct > 0))
				continue;
			snprintf(err, errlen, "[rules%s%s] %s is enabled but has no max",
			         o < 0 ? "" : ":", o < 0 ? "" : rc->over[o].name,
			         bk_rule_name((enum bk_rule_id)id));
			return 1;
		}
	}
	return 0;
}

/* After the whole file: allow_remote may come after listen. */
static int metrics_invalid(const struct load_ctx *c, char *err, size_t errlen)
{
	bool lo = true;

	if (!c->cfg.metrics_listen[0] || c->cfg.metrics_allow_remote ||
	    (bk_listen_parse(c->cfg.metrics_listen, &lo) == 0 && lo))
		return 0;
	snprintf(
	    err, errlen,
	    "line %d: [metrics] listen = %s is not a loopback address: "
	    "/metrics and /healthz have no authentication; set allow_remote = true to "
	    "serve them beyond this host",
	    c->metrics_line, c->cfg.metrics_listen);
	return 1;
}

/* "trip_uids = 1001, alice", "kill_gids = trading", "trip_gids = any". */
static int auth_list(struct load_ctx *c, const char *n, const char *v)
{
	struct bk_acl_lists *l;
	size_t len = 0;
	bool any = false, group;
	int act, rv;

	for (act = 0; act < BK_ACT_COUNT; act++) {
		len = strlen(bk_act_name((enum bk_act)act));
		if (strncmp(n, bk_act_name((enum bk_act)act), len) == 0 && n[len] == '_')
			break;
	}
	if (act == BK_ACT_COUNT || (strcmp(n + len, "_uids") && strcmp(n + len, "_gids")))
		return -ENOENT;
	group = strcmp(n + len, "_gids") == 0;
	l = &c->cfg.acl[act];
	/* resume and force are never open to anyone */
	rv = parse_ids(v, group ? l->gids : l->uids, group ? &l->n_gids : &l->n_uids,
	               group, act <= BK_ACT_KILL ? &any : NULL);
	if (rv == 0) {
		c->acl_set |= 1u << act;
		c->acl_any |= any ? 1u << act : 0;
	}
	return rv ? -EINVAL : 0;
}

/* "alice-desk:operator, ops-bot:trader": CN (spaces inside allowed) ':' role. */
static int parse_roles(struct bk_config *cfg, const char *v)
{
	char buf[8192], *save = NULL, *tok, *colon, *end;

	if (set_str(buf, sizeof(buf), v))
		return -EINVAL;
	cfg->n_tls_roles = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct bk_tls_role *r = &cfg->tls_roles[cfg->n_tls_roles];
		while (isspace((unsigned char)*tok))
			tok++;
		for (end = tok + strlen(tok);
		     end > tok && isspace((unsigned char)end[-1]);)
			*--end = '\0';
		if (!(colon = strrchr(tok, ':')) || cfg->n_tls_roles >= BK_TLS_ROLES)
			return -EINVAL;
		for (end = colon; end > tok && isspace((unsigned char)end[-1]);)
			end--;
		*end = '\0';
		for (colon++; isspace((unsigned char)*colon);)
			colon++;
		r->role = strcmp(colon, "operator") == 0 ? BK_ROLE_OPERATOR
		          : strcmp(colon, "trader") == 0 ? BK_ROLE_TRADER
		          : strcmp(colon, "engine") == 0 ? BK_ROLE_ENGINE
		                                         : BK_ROLE_NONE;
		if (!*tok || r->role == BK_ROLE_NONE || set_str(r->cn, BK_CN_MAX, tok))
			return -EINVAL;
		for (const unsigned char *p = (const unsigned char *)tok; *p; p++)
			if (*p < 0x20 || *p == 0x7f)
				return -EINVAL;
		if (bk_config_role(cfg, r->cn) != BK_ROLE_NONE)
			return -EEXIST;
		cfg->n_tls_roles++;
	}
	return 0;
}

static int key_tls_roles(struct load_ctx *c, const char *n, const char *v)
{
	int err = parse_roles(&c->cfg, v);

	(void)n;
	if (err == -EEXIST)
		return fail(c, c->line, "a CN is given twice in roles = %s", v);
	if (err)
		return fail(c, c->line,
		            "bad roles = %s: CN:operator, CN:trader or CN:engine, "
		            "comma-separated",
		            v);
	return 0;
}

/* After the whole file: defaults that follow other lists, then what is now true. */
static void auth_finish(struct load_ctx *c)
{
	struct bk_config *cfg = &c->cfg;

	for (unsigned act = 0; act < BK_ACT_COUNT; act++)
		if (c->acl_set & (1u << act))
			cfg->auth_any =
			    (cfg->auth_any & ~(1u << act)) | (c->acl_any & (1u << act));
	if (!(c->acl_set & (1u << BK_ACT_KILL))) {
		cfg->acl[BK_ACT_KILL] = cfg->acl[BK_ACT_TRIP];
		cfg->auth_any = (cfg->auth_any & ~(1u << BK_ACT_KILL)) |
		                ((cfg->auth_any >> BK_ACT_TRIP & 1u) << BK_ACT_KILL);
	}
	if (!(c->acl_set & (1u << BK_ACT_FORCE)))
		cfg->acl[BK_ACT_FORCE] = cfg->acl[BK_ACT_RESUME];
}

/*
 * The command listener beyond this host must be TLS with client
 * certificates; plaintext only on loopback, and only when asked for.
 */
static int transport_invalid(const struct load_ctx *c, char *err, size_t errlen)
{
	const struct bk_config *cfg = &c->cfg;
	const char *url = cfg->tcp_url;
	bool lo = false;

	if (!url[0])
		return 0;
	if (strncmp(url, "tls+tcp://", 10) == 0) {
		if (!cfg->tls_cert[0] || !cfg->tls_key[0] || !cfg->tls_ca[0])
			snprintf(
			    err, errlen,
			    "line %d: [commands] tcp_url = %s needs [tls] cert_file, "
			    "key_file and ca_file",
			    c->tcp_line, url);
		else if (!cfg->n_tls_roles)
			snprintf(err, errlen,
			         "line %d: [commands] tcp_url = %s, but [tls] roles is "
			         "empty: no client certificate could do anything",
			         c->tcp_line, url);
		else
			return 0;
		return 1;
	}
	if (bk_listen_parse(url + 6, &lo) == 0 && lo && cfg->allow_plaintext_loopback)
		return 0;
	snprintf(
	    err, errlen,
	    "line %d: [commands] tcp_url = %s is plaintext TCP%s: use tls+tcp:// "
	    "with [tls] client certificates (docs/security.md)%s",
	    c->tcp_line, url, lo ? "" : " on an address that is not numeric loopback",
	    lo ? ", or set [commands] allow_plaintext_loopback = true (its callers may "
	         "then only trip)"
	       : "");
	return 1;
}

/* [rules] keys of the reconciliation rule as a whole (not per strategy). */
static int recon_key(struct load_ctx *c, struct bk_rules_cfg *rc, const char *n,
                     const char *v)
{
	uint64_t x;

	if (strcmp(n, "reconcile_max_age_ms") == 0) {
		if (parse_u64(v, 0, 86400000, &x))
			return fail(c, c->line,
			            "reconcile_max_age_ms '%s' must be 0-86400000 (ms; "
			            "0 = no expiry)",
			            v);
		rc->recon_max_age_ms = (uint32_t)x;
		return 1;
	}
	if (parse_bool(v, &rc->resume_requires_reconcile))
		return fail(c, c->line, "'%s' for '%s' must be true or false", v, n);
	return 1;
}

static int handle_rules(struct load_ctx *c, const char *s, const char *n, const char *v)
{
	struct bk_rules_cfg *rc = &c->cfg.rules;
	struct bk_rule_cfg *rules = rc->dflt;
	int err;

	if (strncmp(s, "rules:", 6) == 0) {
		if (!bk_strategy_name_valid(s + 6))
			return fail(c, c->line,
			            "[%s]: not a strategy name (1-39 bytes of "
			            "[A-Za-z0-9._:-])",
			            s);
		if (c->pass == 1)
			return 1;
		rules = override_for(rc, s + 6);
		if (!rules)
			return fail(c, c->line,
			            "too many [rules:NAME] sections, or name too long");
	} else if (c->pass == 2) {
		return 1;
	} else if (strcmp(n, "reconcile_max_age_ms") == 0 ||
	           strcmp(n, "resume_requires_reconcile") == 0) {
		return recon_key(c, rc, n, v);
	} else if (strcmp(n, "warn_levels") == 0) {
		if (parse_warn(rc, v))
			return fail(c, c->line,
			            "warn_levels '%s' must be 3 ascending "
			            "fractions in (0, 1]",
			            v);
		return 1;
	}
	err = rule_key(rules, n, v);
	if (err == -ENOENT)
		return fail(c, c->line, "unknown rule key '%s' in [%s]", n, s);
	if (err)
		return fail(c, c->line, "bad value '%s' for '%s'", v, n);
	return 1;
}

/*
 * Each key once per section (a section may be given again): "last one wins"
 * let a second resume_uids quietly replace the first. Pass 1 sees every key.
 */
static int duplicate_key(struct load_ctx *c, const char *s, const char *n)
{
	struct seen_key *grown;
	char key[128];

	snprintf(key, sizeof(key), "%s]%s", s, n);
	for (size_t i = 0; i < c->n_seen; i++) {
		if (strcmp(c->seen[i].key, key) != 0)
			continue;
		snprintf(c->err, c->errlen,
		         "line %d: '%s' in [%s] is given twice, on lines %d and %d: give "
		         "each key once (an indented line continues the one above it)",
		         c->line, n, s, c->seen[i].line, c->line);
		c->failed = 1;
		return 1;
	}
	if (c->n_seen == c->cap_seen) {
		size_t cap = c->cap_seen ? 2 * c->cap_seen : 64;
		if (!(grown = realloc(c->seen, cap * sizeof(*grown)))) {
			fail(c, c->line, "out of memory");
			return 1;
		}
		c->seen = grown;
		c->cap_seen = cap;
	}
	snprintf(c->seen[c->n_seen].key, sizeof(c->seen[0].key), "%s", key);
	c->seen[c->n_seen++].line = c->line;
	return 0;
}

/* ---- the keys outside [rules] ------------------------------------------- */

/* Keys with a parser of their own: 0, -EINVAL (the generic message), -ENOENT
 * (not a key after all), or fail() called with a message of its own. */
typedef int key_fn(struct load_ctx *c, const char *n, const char *v);

static int key_instance(struct load_ctx *c, const char *n, const char *v)
{
	(void)n;
	if (!instance_valid(v))
		return fail(c, c->line, "instance '%s' must be 1-63 of [A-Za-z0-9._-]",
		            v);
	snprintf(c->cfg.instance, sizeof(c->cfg.instance), "%s", v);
	return 0;
}

/* one user, by name or uid */
static int key_daemon_user(struct load_ctx *c, const char *n, const char *v)
{
	unsigned ids[BK_AUTH_MAX];
	int one = 0;

	(void)n;
	if (parse_ids(v, ids, &one, false, NULL) || one != 1)
		return -EINVAL;
	c->cfg.daemon_uid = (uid_t)ids[0];
	c->cfg.daemon_uid_set = true;
	return 0;
}

static int key_local_url(struct load_ctx *c, const char *n, const char *v)
{
	(void)n;
	/* "" turns the fast path off; sun_path holds 107 bytes */
	if (*v && (strncmp(v, "unix://", 7) || strlen(v) - 7 > 107))
		return -EINVAL;
	if (set_str(c->cfg.local_url, BK_URL_MAX, v))
		return -EINVAL;
	c->cfg.explicit_set |= BK_CFG_SET_LOCAL_URL;
	return 0;
}

static int key_tcp_url(struct load_ctx *c, const char *n, const char *v)
{
	(void)n;
	if (*v && strncmp(v, "tcp://", 6) && strncmp(v, "tls+tcp://", 10))
		return -EINVAL;
	c->tcp_line = c->line;
	return set_str(c->cfg.tcp_url, BK_URL_MAX, v) ? -EINVAL : 0;
}

/* telemetry feeds the rules: whoever may write it may keep a rule from
 * tripping (a forged Report by another route). Engines write it through a
 * group, never as everyone. */
static int key_tel_mode(struct load_ctx *c, const char *n, const char *v)
{
	uint64_t x;

	(void)n;
	if (parse_mode(v, 0600, 0666, &x) || (x & 0111))
		return -EINVAL;
	if (x & 0002)
		return fail(
		    c, c->line,
		    "bad value '%s' for 'telemetry_mode': writable by others, who "
		    "could forge any strategy's telemetry and blind its rules; give "
		    "engines breakerd's group and use 0660 (0600 .. 0664)",
		    v);
	c->cfg.tel_mode = (mode_t)x;
	return 0;
}

/* groups = momo-eu-1=venue:XETR, momo-eu-1=desk:eu-delta, arb-us-2=venue:XNYS */
static int parse_groups(struct bk_config *cfg, const char *v, const char **why)
{
	char buf[16384], *save = NULL, *tok, *eq;
	int per;

	if (set_str(buf, sizeof(buf), v))
		return -EINVAL;
	cfg->n_groups = 0;
	for (tok = strtok_r(buf, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save)) {
		*why = "each entry is strategy=kind:value";
		if (!(eq = strchr(tok, '=')) || cfg->n_groups >= BK_CFG_GROUPS)
			return -EINVAL;
		*eq = '\0';
		if (!bk_strategy_name_valid(tok) || bk_group_tag_check(eq + 1, why) < 0)
			return -EINVAL;
		per = 0;
		for (int i = 0; i < cfg->n_groups; i++) {
			if (strcmp(cfg->groups[i].strategy, tok))
				continue;
			*why = "a group given twice for one strategy";
			if (strcmp(cfg->groups[i].group, eq + 1) == 0)
				return -EINVAL;
			per++;
		}
		*why = "more than 8 groups for one strategy";
		if (per >= BK_GROUP_TAGS_MAX)
			return -EINVAL;
		snprintf(cfg->groups[cfg->n_groups].strategy, BK_NAME_MAX, "%s", tok);
		snprintf(cfg->groups[cfg->n_groups].group, BK_NAME_MAX, "%s", eq + 1);
		cfg->n_groups++;
	}
	return 0;
}

static int key_strategies(struct load_ctx *c, const char *n, const char *v)
{
	const char *why = "";

	if (strcmp(n, "groups") == 0) {
		if (parse_groups(&c->cfg, v, &why))
			return fail(
			    c, c->line,
			    "bad groups = %s: %s (strategy=kind:value, kinds: venue, "
			    "desk, account, trader, host; at most %d pairs)",
			    v, why, BK_CFG_GROUPS);
		return 0;
	}
	if (strcmp(n, "names") == 0) {
		if (parse_strategies(c->cfg.strategies, &c->cfg.n_strategies, v))
			return fail(c, c->line,
			            "bad names = %s: strategy names are 1-39 bytes of "
			            "[A-Za-z0-9._:-], at most 256 of them",
			            v);
	} else if (parse_strategies(c->cfg.remote, &c->cfg.n_remote, v)) {
		return fail(c, c->line,
		            "bad remote = %s: strategy names (1-39 bytes of "
		            "[A-Za-z0-9._:-]) whose telemetry comes by Report",
		            v);
	}
	return 0;
}

static int key_metrics_listen(struct load_ctx *c, const char *n, const char *v)
{
	bool lo;

	(void)n;
	c->metrics_line = c->line;
	if (*v && bk_listen_parse(v, &lo))
		return -EINVAL;
	return set_str(c->cfg.metrics_listen, sizeof(c->cfg.metrics_listen), v) ? -EINVAL
	                                                                        : 0;
}

void bk_config_incident_defaults(struct bk_config *cfg)
{
	/* the runbooks' seeds: money at risk or books wrong is P1, a rule that
	 * protects against a misbehaving engine P2, a throttle or one person's
	 * halt P3 (docs/incidents.md) */
	static const uint8_t sev[BK_REASON_COUNT] = {
	    [BK_R_NONE] = 3,
	    [BK_R_MANUAL_HALT] = 3,
	    [BK_R_EMERGENCY_STOP] = 1,
	    [BK_R_KILL_SWITCH] = 2,
	    [BK_R_REJECT_RATE] = 2,
	    [BK_R_ORDER_RATE] = 3,
	    [BK_R_INVARIANT_VIOLATION] = 1,
	    [BK_R_RECONCILIATION_BREAK] = 1,
	    [BK_R_DRAWDOWN] = 2,
	    [BK_R_EXPOSURE_LIMIT] = 2,
	    [BK_R_STALE_HEARTBEAT] = 2,
	    [BK_R_AUDIT_CORRUPT] = 1,
	    [BK_R_MARKET_DATA_STALE] = 2,
	    [BK_R_EXCHANGE_DOWN] = 1,
	    [BK_R_AUTHORITY_LOST] = 1,
	};

	memcpy(cfg->incident_severity, sev, sizeof(sev));
}

/* [incidents] reject_rate = P2 */
static int key_incident_severity(struct load_ctx *c, const char *n, const char *v)
{
	int code = bk_reason_parse(n);

	if (code <= 0)
		return fail(c, c->line,
		            "unknown key '%s' in section [incidents]: a reason code "
		            "(e.g. reject_rate = P2)",
		            n);
	if (!(v[0] == 'P' && v[1] >= '1' && v[1] <= '4' && !v[2]))
		return -EINVAL;
	c->cfg.incident_severity[code] = (uint8_t)(v[1] - '0');
	return 0;
}

/* [cluster] name and host: what a key path may hold, [A-Za-z0-9._:-]. */
static int key_cluster_word(struct load_ctx *c, const char *n, const char *v)
{
	char *dst = strcmp(n, "name") == 0   ? c->cfg.cluster_name
	            : strcmp(n, "user") == 0 ? c->cfg.cluster_user
	                                     : c->cfg.cluster_host;

	if (!*v || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                     "0123456789._:-") != strlen(v))
		return -EINVAL;
	c->cfg.cluster_line = c->line;
	return set_str(dst, 64, v) ? -EINVAL : 0;
}

/* [cluster] endpoints: http(s):// URLs, comma-separated. */
static int key_cluster_endpoints(struct load_ctx *c, const char *n, const char *v)
{
	struct bk_etcd_conn probe;
	int rv;

	(void)n;
	if (strlen(v) >= sizeof(c->cfg.cluster_endpoints))
		return -EINVAL;
	rv = bk_etcd_conn_init(&probe, v, 1000); /* the syntax check, no I/O */
	bk_etcd_conn_free(&probe);
	if (rv)
		return -EINVAL;
	c->cfg.cluster_line = c->line;
	return set_str(c->cfg.cluster_endpoints, sizeof(c->cfg.cluster_endpoints), v);
}

/* After the whole file: a [cluster] needs its name and endpoints, T1 < T2. */
static int cluster_invalid(const struct load_ctx *c, char *err, size_t errlen)
{
	const struct bk_config *g = &c->cfg;

	if (!g->cluster_name[0] && !g->cluster_endpoints[0])
		return 0;
	if (!g->cluster_name[0] || !g->cluster_endpoints[0])
		snprintf(err, errlen, "line %d: [cluster] needs both name and endpoints",
		         g->cluster_line);
	else if (g->cluster_t2_ns <= g->cluster_t1_ns)
		snprintf(
		    err, errlen,
		    "[cluster] authority_t2_ms must be greater than authority_t1_ms");
	else if (!g->cluster_user[0] != !g->cluster_password_file[0])
		snprintf(err, errlen, "[cluster] user and password_file go together");
	else if (!g->cluster_cert_file[0] != !g->cluster_key_file[0])
		snprintf(err, errlen, "[cluster] cert_file and key_file go together");
	else if ((g->cluster_cert_file[0] || g->cluster_ca_file[0]) &&
	         strstr(g->cluster_endpoints, "http://"))
		snprintf(err, errlen,
		         "[cluster] cert_file/ca_file need every endpoint https://");
	else if (g->cluster_probe_timeout_ns >= g->cluster_t1_ns)
		snprintf(err, errlen,
		         "[cluster] probe_timeout_ms must be less than authority_t1_ms");
	else
		return 0;
	return 1;
}

enum key_kind {
	KEY_UINT, /* decimal in [min, max], times scale, into a 4- or 8-byte field */
	KEY_MODE, /* octal in [min, max] with none of the deny bits */
	KEY_BOOL, /* true or false */
	KEY_PATH, /* an absolute path */
	KEY_IPC,  /* an ipc:// URL */
	KEY_FN,   /* its own parser, fn */
};

struct key_def {
	const char *section;
	const char *name; /* NULL: any key of the section not named before it */
	enum key_kind kind;
	size_t off, size; /* the field in struct bk_config */
	uint64_t min, max;
	uint64_t scale;  /* KEY_UINT: the field holds value * scale (0: 1) */
	unsigned deny;   /* KEY_MODE: bits never allowed */
	unsigned set;    /* BK_CFG_SET_* to mark in explicit_set */
	const char *why; /* appended to the "bad value" message */
	key_fn *fn;
};

#define KEY(s, n, k) .section = (s), .name = (n), .kind = (k)
#define FIELD(m)                                                                         \
	.off = offsetof(struct bk_config, m), .size = sizeof(((struct bk_config *)0)->m)
#define RANGE(a, b) .min = (a), .max = (b)
#define ABS_PATH    "must be an absolute path"
#define ID_LIST                                                                          \
	"numeric ids or known user/group names, comma-separated (\"any\" for trip and "  \
	"kill only)"

/* Every key outside [rules], where it goes, and its range. */
static const struct key_def keys[] = {
    {KEY("breaker", "instance", KEY_FN), .fn = key_instance},
    {KEY("breaker", "run_dir", KEY_PATH), FIELD(run_dir), .set = BK_CFG_SET_RUN_DIR},
    {KEY("breaker", "state_dir", KEY_PATH), FIELD(state_dir),
     .set = BK_CFG_SET_STATE_DIR},
    {KEY("breaker", "daemon_user", KEY_FN), .fn = key_daemon_user},
    {KEY("breaker", "realtime_priority", KEY_UINT), FIELD(rt_priority), RANGE(0, 99)},
    {KEY("breaker", "busy_poll", KEY_BOOL), FIELD(busy_poll)},
    {KEY("breaker", "tick_period_us", KEY_UINT), FIELD(tick_ns), RANGE(10, 1000000),
     .scale = 1000},
    {KEY("breaker", "idle_tick_period_us", KEY_UINT), FIELD(idle_tick_ns),
     RANGE(0, 1000000), .scale = 1000},
    {KEY("breaker", "heartbeat_bound_ms", KEY_UINT), FIELD(heartbeat_bound_ns),
     RANGE(1, 60000), .scale = 1000000},
    /* never group/other-writable: engines must only read */
    {KEY("breaker", "shm_mode", KEY_MODE), FIELD(shm_mode), RANGE(0400, 0644),
     .deny = 0133},
    {KEY("breaker", "telemetry_mode", KEY_FN), .fn = key_tel_mode},
    {KEY("commands", "max_message_bytes", KEY_UINT), FIELD(max_msg),
     RANGE(1024, 1 << 20)},
    /* bounded so that every audit record fits BK_AUDIT_RECORD_MAX */
    {KEY("commands", "reason_max_bytes", KEY_UINT), FIELD(reason_max), RANGE(16, 2048)},
    {KEY("commands", "ipc_url", KEY_IPC), FIELD(cmd_url), .set = BK_CFG_SET_CMD_URL},
    {KEY("commands", "pub_url", KEY_IPC), FIELD(pub_url), .set = BK_CFG_SET_PUB_URL},
    {KEY("commands", "local_url", KEY_FN), .fn = key_local_url},
    {KEY("commands", "tcp_url", KEY_FN), .fn = key_tcp_url},
    {KEY("commands", "allow_plaintext_loopback", KEY_BOOL),
     FIELD(allow_plaintext_loopback)},
    {KEY("commands", "idle_timeout_ms", KEY_UINT), FIELD(idle_timeout_ms),
     RANGE(100, 3600 * 1000)},
    {KEY("commands", "max_conns_per_uid", KEY_UINT), FIELD(max_conns_per_uid),
     RANGE(1, 1000000)},
    {KEY("commands", "socket_mode", KEY_MODE), FIELD(sock_mode), RANGE(0600, 0777)},
    {KEY("auth", "two_person_global_resume", KEY_BOOL), FIELD(two_person_global_resume)},
    {KEY("auth", "confirm_window_s", KEY_UINT), FIELD(confirm_window_s), RANGE(1, 3600)},
    {KEY("auth", NULL, KEY_FN), .fn = auth_list, .why = ID_LIST}, /* <act>_uids/_gids */
    {KEY("tls", "cert_file", KEY_PATH), FIELD(tls_cert), .why = ABS_PATH},
    {KEY("tls", "key_file", KEY_PATH), FIELD(tls_key), .why = ABS_PATH},
    {KEY("tls", "ca_file", KEY_PATH), FIELD(tls_ca), .why = ABS_PATH},
    {KEY("tls", "client_cert_file", KEY_PATH), FIELD(tls_client_cert), .why = ABS_PATH},
    {KEY("tls", "client_key_file", KEY_PATH), FIELD(tls_client_key), .why = ABS_PATH},
    {KEY("tls", "client_ca_file", KEY_PATH), FIELD(tls_client_ca), .why = ABS_PATH},
    {KEY("tls", "roles", KEY_FN), .fn = key_tls_roles},
    {KEY("strategies", "names", KEY_FN), .fn = key_strategies},
    {KEY("strategies", "remote", KEY_FN), .fn = key_strategies},
    {KEY("strategies", "groups", KEY_FN), .fn = key_strategies},
    {KEY("metrics", "listen", KEY_FN), .fn = key_metrics_listen},
    {KEY("metrics", "allow_remote", KEY_BOOL), FIELD(metrics_allow_remote)},
    {KEY("incidents", NULL, KEY_FN), .fn = key_incident_severity,
     .why = "a severity P1, P2, P3 or P4"},
    {KEY("cluster", "name", KEY_FN), .fn = key_cluster_word,
     .why = "1..63 of [A-Za-z0-9._:-]"},
    {KEY("cluster", "host", KEY_FN), .fn = key_cluster_word,
     .why = "1..63 of [A-Za-z0-9._:-]"},
    {KEY("cluster", "endpoints", KEY_FN), .fn = key_cluster_endpoints,
     .why = "http:// or https:// URLs, comma-separated, at most 8"},
    {KEY("cluster", "authority_t1_ms", KEY_UINT), FIELD(cluster_t1_ns),
     RANGE(200, 600000), .scale = 1000000},
    {KEY("cluster", "authority_t2_ms", KEY_UINT), FIELD(cluster_t2_ns),
     RANGE(300, 600000), .scale = 1000000},
    {KEY("cluster", "probe_period_ms", KEY_UINT), FIELD(cluster_probe_ns),
     RANGE(10, 10000), .scale = 1000000},
    {KEY("cluster", "probe_timeout_ms", KEY_UINT), FIELD(cluster_probe_timeout_ns),
     RANGE(10, 60000), .scale = 1000000},
    {KEY("cluster", "lease_ttl_s", KEY_UINT), FIELD(cluster_lease_s), RANGE(2, 3600)},
    {KEY("cluster", "anchor_period_ms", KEY_UINT), FIELD(cluster_anchor_period_ns),
     RANGE(0, 3600000), .scale = 1000000, .why = "ms; 0 = no anchors in etcd"},
    {KEY("cluster", "anchor_keep", KEY_UINT), FIELD(cluster_anchor_keep),
     RANGE(16, 5000)},
    {KEY("cluster", "user", KEY_FN), .fn = key_cluster_word,
     .why = "1..63 of [A-Za-z0-9._:-]"},
    {KEY("cluster", "password_file", KEY_PATH), FIELD(cluster_password_file),
     .why = ABS_PATH},
    {KEY("cluster", "cert_file", KEY_PATH), FIELD(cluster_cert_file), .why = ABS_PATH},
    {KEY("cluster", "key_file", KEY_PATH), FIELD(cluster_key_file), .why = ABS_PATH},
    {KEY("cluster", "ca_file", KEY_PATH), FIELD(cluster_ca_file), .why = ABS_PATH},
    /* the venue rules (bk_venue.h): md staleness off unless set */
    {KEY("venues", "md_stale_ms", KEY_UINT), FIELD(venues.md_stale_ms), RANGE(0, 3600000),
     .why = "ms; 0 = off"},
    {KEY("venues", "session_down", KEY_BOOL), FIELD(venues.session_down)},
};

_Static_assert(sizeof(mode_t) == 4 && sizeof(int) == 4 && sizeof(uint32_t) == 4,
               "KEY_UINT and KEY_MODE fields are 4 or 8 bytes wide");

static const struct key_def *key_find(const char *s, const char *n)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].section, s) == 0 &&
		    (!keys[i].name || strcmp(keys[i].name, n) == 0))
			return &keys[i];
	return NULL;
}

/* A number into a 4- or 8-byte unsigned field (int, mode_t, uint32_t, uint64_t). */
static void store_uint(void *field, size_t size, uint64_t x)
{
	uint32_t x32 = (uint32_t)x;

	if (size == sizeof(x))
		memcpy(field, &x, sizeof(x));
	else
		memcpy(field, &x32, sizeof(x32));
}

/* One key's value into c->cfg: 0 or as key_fn. */
static int key_set(struct load_ctx *c, const struct key_def *k, const char *n,
                   const char *v)
{
	char *field = (char *)&c->cfg + k->off;
	uint64_t x;

	switch (k->kind) {
	case KEY_UINT:
		if (parse_u64(v, k->min, k->max, &x))
			return -EINVAL;
		store_uint(field, k->size, x * (k->scale ? k->scale : 1));
		return 0;
	case KEY_MODE:
		if (parse_mode(v, k->min, k->max, &x) || (x & k->deny))
			return -EINVAL;
		store_uint(field, k->size, x);
		return 0;
	case KEY_BOOL:
		return parse_bool(v, (bool *)field);
	case KEY_PATH:
	case KEY_IPC:
		if (k->kind == KEY_PATH ? *v != '/' : strncmp(v, "ipc://", 6) != 0)
			return -EINVAL;
		if (set_str(field, k->size, v))
			return -EINVAL;
		c->cfg.explicit_set |= k->set;
		return 0;
	case KEY_FN:
		return k->fn(c, n, v);
	}
	return -EINVAL;
}

static int handle(void *user, const char *s, const char *n, const char *v)
{
	struct load_ctx *c = user;
	const struct key_def *k;
	int err;

	if (c->pass == 1 && duplicate_key(c, s, n))
		return 0;

	if (strcmp(s, "rules") == 0 || strncmp(s, "rules:", 6) == 0)
		return handle_rules(c, s, n, v);
	if (c->pass == 2)
		return 1;
	if (strcmp(s, "limits") == 0 || strncmp(s, "limits:", 7) == 0) {
		char why[400];

		if (bk_limits_key(&c->cfg.limits, s[6] ? s + 7 : NULL, n, v, why,
		                  sizeof(why)))
			return fail(c, c->line, "%s", why);
		return 1;
	}

	err = (k = key_find(s, n)) ? key_set(c, k, n, v) : -ENOENT;
	if (c->failed)
		return 0;
	if (err == -ENOENT)
		return fail(c, c->line, "unknown key '%s' in section [%s]", n, s);
	if (err)
		return fail(c, c->line, "bad value '%s' for '%s'%s%s", v, n,
		            k->why ? ": " : "", k->why ? k->why : "");
	return 1;
}

/* One line for inih; a NUL byte in it ends the parse as an error (inih would
 * read the line only up to it: "\0resume_uids = ..." would vanish). */
static char *read_line(char *buf, int len, void *arg)
{
	struct load_ctx *c = arg;
	int ch, n = 0;

	if (c->failed)
		return NULL;
	c->line++;
	while (n < len - 1 && (ch = getc(c->file)) != EOF) {
		if (ch == '\0') {
			fail(c, c->line, "a NUL byte in the file: not a text config");
			return NULL;
		}
		buf[n++] = (char)ch;
		if (ch == '\n')
			break;
	}
	/* inih's buffer is full and the line goes on: its rest would be read as
	 * a line of its own (text in a comment past byte 199 became a setting) */
	if (n == len - 1 && buf[n - 1] != '\n' && (ch = getc(c->file)) != EOF &&
	    ch != '\n' && !(ch == '\r' && ((ch = getc(c->file)) == '\n' || ch == EOF))) {
		fail(c, c->line,
		     "longer than %d bytes: split it (breakerd would read the rest as "
		     "a line of its own)",
		     len - 2);
		return NULL;
	}
	buf[n] = '\0';
	return n ? buf : NULL;
}

int bk_config_load(struct bk_config *cfg, const char *path, char *err, size_t errlen)
{
	struct load_ctx c = {.cfg = *cfg, .err = err, .errlen = errlen};
	int rv;

	c.file = fopen(path, "re");
	if (!c.file) {
		rv = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rv));
		return rv;
	}
	/* Two passes so [rules:NAME] inherits every [rules] default, wherever it is. */
	for (c.pass = 1; c.pass <= 2; c.pass++) {
		rewind(c.file);
		c.line = 0;
		rv = ini_parse_stream(read_line, &c, handle, &c);
		if (c.failed || rv != 0)
			break;
	}
	fclose(c.file);
	free(c.seen);
	if (c.failed)
		return -EINVAL;
	if (rv != 0) {
		snprintf(err, errlen, "line %d: syntax error", rv);
		return -EINVAL;
	}
	auth_finish(&c);
	if (rules_invalid(&c.cfg.rules, err, errlen) ||
	    metrics_invalid(&c, err, errlen) || transport_invalid(&c, err, errlen) ||
	    cluster_invalid(&c, err, errlen))
		return -EINVAL;
	/* Paths follow instance/run_dir/state_dir unless set explicitly. */
	default_dirs_keep(&c.cfg, c.cfg.explicit_set & BK_CFG_SET_RUN_DIR,
	                  c.cfg.explicit_set & BK_CFG_SET_STATE_DIR);
	bk_config_derive(&c.cfg);
	*cfg = c.cfg;
	return 0;
}
