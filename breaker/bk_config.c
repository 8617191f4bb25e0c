#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bk_config.h"
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
	snprintf(cfg->audit_path, sizeof(cfg->audit_path), "%s/audit.log",
	         cfg->state_dir);
	snprintf(cfg->cmd_url, sizeof(cfg->cmd_url), "ipc://%s/%s.cmd", cfg->run_dir,
	         cfg->instance);
	snprintf(cfg->pub_url, sizeof(cfg->pub_url), "ipc://%s/%s.pub", cfg->run_dir,
	         cfg->instance);
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
	memset(cfg, 0, sizeof(*cfg));
	if (!instance)
		instance = "default";
	if (!instance_valid(instance))
		return -EINVAL;
	snprintf(cfg->instance, sizeof(cfg->instance), "%s", instance);
	default_dirs(cfg);
	bk_config_derive(cfg);
	cfg->tick_ns = 100 * 1000;
	/* 50 ms: safe on a shared host; lower it on a dedicated one */
	cfg->heartbeat_bound_ns = 50 * 1000 * 1000;
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
	cfg->resume_uids[cfg->n_resume_uids++] = geteuid();
	if (geteuid() != 0)
		cfg->resume_uids[cfg->n_resume_uids++] = 0;
	memcpy(cfg->force_uids, cfg->resume_uids, sizeof(cfg->force_uids));
	cfg->n_force_uids = cfg->n_resume_uids;
	/* Reporting: who may write the telemetry segment (0660: its owner and
	 * group, which are ours). */
	cfg->report_uids[cfg->n_report_uids++] = geteuid();
	cfg->report_gids[cfg->n_report_gids++] = getegid();
	/* Tripping is easy: anyone who can reach the command socket. */
	cfg->auth_any = 1u << BK_ACT_TRIP | 1u << BK_ACT_KILL;
	cfg->confirm_window_s = 120;
	return 0;
}

void bk_config_acl(const struct bk_config *cfg, enum bk_act act, struct bk_acl *acl)
{
	switch (act) {
	case BK_ACT_TRIP:
		*acl = (struct bk_acl){cfg->trip_uids, cfg->n_trip_uids, cfg->trip_gids,
		                       cfg->n_trip_gids, false};
		break;
	case BK_ACT_KILL:
		*acl = (struct bk_acl){cfg->kill_uids, cfg->n_kill_uids, cfg->kill_gids,
		                       cfg->n_kill_gids, false};
		break;
	case BK_ACT_RESUME:
		*acl = (struct bk_acl){cfg->resume_uids, cfg->n_resume_uids,
		                       cfg->resume_gids, cfg->n_resume_gids, false};
		break;
	case BK_ACT_REPORT:
		*acl = (struct bk_acl){cfg->report_uids, cfg->n_report_uids,
		                       cfg->report_gids, cfg->n_report_gids, false};
		break;
	default:
		*acl = (struct bk_acl){cfg->force_uids, cfg->n_force_uids,
		                       cfg->force_gids, cfg->n_force_gids, false};
		break;
	}
	acl->any = cfg->auth_any & (1u << act);
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
	int urls_set;     /* explicit urls/dirs (bits 1,2,4,8) survive re-derivation */
	int pass;         /* 1: everything but [rules:NAME]; 2: only [rules:NAME] */
	int metrics_line; /* of [metrics] listen, for the loopback check's message */
	int tcp_line;     /* of [commands] tcp_url, for the transport checks */
	unsigned acl_set; /* bit per enum bk_act: the file gave its lists */
	unsigned acl_any; /* bit per enum bk_act: ... and one said "any" */
	struct seen_key *seen; /* every "section]name" so far, for duplicates */
	size_t n_seen, cap_seen;
};

struct seen_key {
	char key[128]; /* "section]name": ']' cannot be in a section name */
	int line;
};

static int fail(struct load_ctx *c, int line, const char *fmt, const char *a,
                const char *b)
{
	char what[256];

	snprintf(what, sizeof(what), fmt, a, b);
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

static int key_is(const char *s, const char *n, const char *section, const char *name)
{
	return strcmp(s, section) == 0 && strcmp(n, name) == 0;
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

/* "reject_rate.max = 0.2": one field of one rule. */
static int rule_key(struct bk_rule_cfg *rules, const char *key, const char *v)
{
	char name[32];
	const char *dot = strchr(key, '.');
	struct bk_rule_cfg *r;
	uint64_t x = 0;
	double d;
	int id, m;

	if (!dot || (size_t)(dot - key) >= sizeof(name))
		return -ENOENT;
	memcpy(name, key, (size_t)(dot - key));
	name[dot - key] = '\0';
	if ((id = bk_rule_parse(name)) < 0)
		return -ENOENT;
	r = &rules[id];
	key = dot + 1;
	if (strcmp(key, "enabled") == 0) {
		if (strcmp(v, "true") && strcmp(v, "false"))
			return -EINVAL;
		r->enabled = strcmp(v, "true") == 0;
	} else if (strcmp(key, "max") == 0) {
		if (parse_double(v, 0, 1e18, &d))
			return -EINVAL;
		r->max = d;
		r->enabled = true;
	} else if (strcmp(key, "max_pct") == 0) {
		if (parse_double(v, 0, 100, &d))
			return -EINVAL;
		r->max_pct = d / 100.0;
		r->enabled = true;
	} else if (strcmp(key, "window_ms") == 0) {
		if (parse_u64(v, 1, 3600000, &x))
			return -EINVAL;
		r->window_ms = (uint32_t)x;
	} else if (strcmp(key, "min_orders") == 0) {
		if (parse_u64(v, 0, 1000000000, &x))
			return -EINVAL;
		r->min_orders = (uint32_t)x;
	} else if (strcmp(key, "action") == 0) {
		if ((m = bk_mode_parse(v)) < BK_CAUTIOUS)
			return -EINVAL;
		r->action = (uint8_t)m;
	} else if (strcmp(key, "scope") == 0) {
		if (strcmp(v, "global") && strcmp(v, "strategy"))
			return -EINVAL;
		r->global = strcmp(v, "global") == 0;
	} else if (strcmp(key, "cooldown_ms") == 0) {
		if (parse_u64(v, 0, 86400000, &x))
			return -EINVAL;
		r->cooldown_ms = (uint32_t)x;
	} else if (strcmp(key, "cooldown_to") == 0) {
		/* a cooldown never goes back to ACTIVE on its own */
		m = bk_mode_parse(v);
		if (m != BK_CAUTIOUS && m != BK_REDUCE_ONLY)
			return -EINVAL;
		r->cooldown_to = (uint8_t)m;
	} else if (strcmp(key, "rearm_ms") == 0) {
		/* 0: after a forced resume, trip again only on worsening */
		if (parse_u64(v, 0, 86400000, &x))
			return -EINVAL;
		r->rearm_ms = (uint32_t)x;
	} else {
		return -ENOENT;
	}
	return 0;
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

static int parse_bool(const char *v, bool *out)
{
	if (strcmp(v, "true") && strcmp(v, "false"))
		return -EINVAL;
	*out = strcmp(v, "true") == 0;
	return 0;
}

/* An act's lists in cfg, writable, for the parser. */
static void acl_lists(struct bk_config *cfg, enum bk_act act, unsigned **uids, int **nu,
                      unsigned **gids, int **ng)
{
	struct bk_acl a;

	bk_config_acl(cfg, act, &a);
	*uids = (unsigned *)a.uids;
	*gids = (unsigned *)a.gids;
	*nu = act == BK_ACT_TRIP     ? &cfg->n_trip_uids
	      : act == BK_ACT_KILL   ? &cfg->n_kill_uids
	      : act == BK_ACT_RESUME ? &cfg->n_resume_uids
	      : act == BK_ACT_REPORT ? &cfg->n_report_uids
	                             : &cfg->n_force_uids;
	*ng = act == BK_ACT_TRIP     ? &cfg->n_trip_gids
	      : act == BK_ACT_KILL   ? &cfg->n_kill_gids
	      : act == BK_ACT_RESUME ? &cfg->n_resume_gids
	      : act == BK_ACT_REPORT ? &cfg->n_report_gids
	                             : &cfg->n_force_gids;
}

/* "trip_uids = 1001, alice", "kill_gids = trading", "trip_gids = any". */
static int auth_list(struct load_ctx *c, const char *n, const char *v)
{
	unsigned *uids, *gids;
	int *nu, *ng, act;
	size_t len;
	bool any = false, group;
	int rv;

	for (act = 0; act < BK_ACT_COUNT; act++) {
		len = strlen(bk_act_name((enum bk_act)act));
		if (strncmp(n, bk_act_name((enum bk_act)act), len) == 0 && n[len] == '_')
			break;
	}
	if (act == BK_ACT_COUNT || (strcmp(n + len, "_uids") && strcmp(n + len, "_gids")))
		return -ENOENT;
	group = strcmp(n + len, "_gids") == 0;
	acl_lists(&c->cfg, (enum bk_act)act, &uids, &nu, &gids, &ng);
	/* resume and force are never open to anyone */
	rv = parse_ids(v, group ? gids : uids, group ? ng : nu, group,
	               act <= BK_ACT_KILL ? &any : NULL);
	if (rv == 0) {
		c->acl_set |= 1u << act;
		c->acl_any |= any ? 1u << act : 0;
	}
	return rv ? -EINVAL : 0;
}

static int handle_auth(struct load_ctx *c, const char *n, const char *v)
{
	uint64_t x;
	int err;

	if (strcmp(n, "two_person_global_resume") == 0) {
		err = parse_bool(v, &c->cfg.two_person_global_resume);
	} else if (strcmp(n, "confirm_window_s") == 0) {
		if (!(err = parse_u64(v, 1, 3600, &x)))
			c->cfg.confirm_window_s = (uint32_t)x;
	} else if ((err = auth_list(c, n, v)) == -ENOENT) {
		return fail(c, c->line, "unknown key '%s' in section [%s]", n, "auth");
	} else if (err) {
		return fail(c, c->line,
		            "bad value '%s' for '%s': numeric ids or known user/group "
		            "names, comma-separated (\"any\" for trip and kill only)",
		            v, n);
	}
	if (err)
		return fail(c, c->line, "bad value '%s' for '%s'", v, n);
	return 1;
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

static int handle_tls(struct load_ctx *c, const char *n, const char *v)
{
	static const char *const files[] = {"cert_file",       "key_file",
	                                    "ca_file",         "client_cert_file",
	                                    "client_key_file", "client_ca_file"};
	struct bk_config *cfg = &c->cfg;
	char *dst[] = {cfg->tls_cert,        cfg->tls_key,        cfg->tls_ca,
	               cfg->tls_client_cert, cfg->tls_client_key, cfg->tls_client_ca};
	int err;

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (strcmp(n, files[i]) == 0) {
			if (*v != '/' || set_str(dst[i], PATH_MAX, v))
				return fail(c, c->line,
				            "'%s' for '%s' must be an absolute path", v,
				            n);
			return 1;
		}
	if (strcmp(n, "roles") != 0)
		return fail(c, c->line, "unknown key '%s' in section [%s]", n, "tls");
	if ((err = parse_roles(cfg, v)) == -EEXIST)
		return fail(c, c->line, "a CN is given twice in roles = %s%s", v, "");
	if (err)
		return fail(c, c->line,
		            "bad roles = %s: CN:operator, CN:trader or CN:engine, "
		            "comma-separated%s",
		            v, "");
	return 1;
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
		memcpy(cfg->kill_uids, cfg->trip_uids, sizeof(cfg->kill_uids));
		memcpy(cfg->kill_gids, cfg->trip_gids, sizeof(cfg->kill_gids));
		cfg->n_kill_uids = cfg->n_trip_uids;
		cfg->n_kill_gids = cfg->n_trip_gids;
		cfg->auth_any = (cfg->auth_any & ~(1u << BK_ACT_KILL)) |
		                ((cfg->auth_any >> BK_ACT_TRIP & 1u) << BK_ACT_KILL);
	}
	if (!(c->acl_set & (1u << BK_ACT_FORCE))) {
		memcpy(cfg->force_uids, cfg->resume_uids, sizeof(cfg->force_uids));
		memcpy(cfg->force_gids, cfg->resume_gids, sizeof(cfg->force_gids));
		cfg->n_force_uids = cfg->n_resume_uids;
		cfg->n_force_gids = cfg->n_resume_gids;
	}
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
static int recon_key(struct load_ctx *c, struct bk_rules_cfg *rc, const char *s,
                     const char *n, const char *v)
{
	uint64_t x;

	if (strcmp(n, "reconcile_max_age_ms") == 0) {
		if (parse_u64(v, 0, 86400000, &x))
			return fail(c, c->line,
			            "reconcile_max_age_ms '%s' must be 0-86400000 (ms; "
			            "0 = no expiry)",
			            v, "");
		rc->recon_max_age_ms = (uint32_t)x;
		return 1;
	}
	if (strcmp(v, "true") && strcmp(v, "false"))
		return fail(c, c->line, "'%s' for '%s' must be true or false", v, n);
	rc->resume_requires_reconcile = strcmp(v, "true") == 0;
	(void)s;
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
			            "[A-Za-z0-9._:-])%s",
			            s, "");
		if (c->pass == 1)
			return 1;
		rules = override_for(rc, s + 6);
		if (!rules)
			return fail(c, c->line,
			            "too many [rules:NAME] sections, or name too long",
			            "", "");
	} else if (c->pass == 2) {
		return 1;
	} else if (strcmp(n, "reconcile_max_age_ms") == 0 ||
	           strcmp(n, "resume_requires_reconcile") == 0) {
		return recon_key(c, rc, s, n, v);
	} else if (strcmp(n, "warn_levels") == 0) {
		if (parse_warn(rc, v))
			return fail(c, c->line,
			            "warn_levels '%s' must be 3 ascending "
			            "fractions in (0, 1]",
			            v, "");
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
			fail(c, c->line, "out of memory%s%s", "", "");
			return 1;
		}
		c->seen = grown;
		c->cap_seen = cap;
	}
	snprintf(c->seen[c->n_seen].key, sizeof(c->seen[0].key), "%s", key);
	c->seen[c->n_seen++].line = c->line;
	return 0;
}

static int handle(void *user, const char *s, const char *n, const char *v)
{
	struct load_ctx *c = user;
	int line = c->line;
	struct bk_config *cfg = &c->cfg;
	uint64_t x;
	int err = 0;

	if (c->pass == 1 && duplicate_key(c, s, n))
		return 0;

	if (strcmp(s, "rules") == 0 || strncmp(s, "rules:", 6) == 0)
		return handle_rules(c, s, n, v);
	if (c->pass == 2)
		return 1;

	if (key_is(s, n, "breaker", "instance")) {
		if (!instance_valid(v))
			return fail(c, line,
			            "instance '%s' must be 1-63 of [A-Za-z0-9._-]", v,
			            "");
		snprintf(cfg->instance, sizeof(cfg->instance), "%s", v);
	} else if (key_is(s, n, "breaker", "run_dir")) {
		err =
		    *v == '/' ? set_str(cfg->run_dir, sizeof(cfg->run_dir), v) : -EINVAL;
		c->urls_set |= err ? 0 : 4;
	} else if (key_is(s, n, "breaker", "state_dir")) {
		err = *v == '/' ? set_str(cfg->state_dir, sizeof(cfg->state_dir), v)
		                : -EINVAL;
		c->urls_set |= err ? 0 : 8;
	} else if (key_is(s, n, "breaker", "daemon_user")) {
		unsigned ids[BK_AUTH_MAX];
		int one = 0;

		/* one user, by name or uid */
		if (!(err = parse_ids(v, ids, &one, false, NULL)) && one != 1)
			err = -EINVAL;
		cfg->daemon_uid = err ? cfg->daemon_uid : (uid_t)ids[0];
		cfg->daemon_uid_set = cfg->daemon_uid_set || !err;
	} else if (key_is(s, n, "breaker", "realtime_priority")) {
		if (!(err = parse_u64(v, 0, 99, &x)))
			cfg->rt_priority = (int)x;
	} else if (key_is(s, n, "breaker", "busy_poll")) {
		if (strcmp(v, "true") && strcmp(v, "false"))
			err = -EINVAL;
		cfg->busy_poll = strcmp(v, "true") == 0;
	} else if (key_is(s, n, "breaker", "tick_period_us")) {
		if (!(err = parse_u64(v, 10, 1000000, &x)))
			cfg->tick_ns = x * 1000;
	} else if (key_is(s, n, "breaker", "heartbeat_bound_ms")) {
		if (!(err = parse_u64(v, 1, 60000, &x)))
			cfg->heartbeat_bound_ns = x * 1000000;
	} else if (key_is(s, n, "breaker", "shm_mode")) {
		/* never group/other-writable: engines must only read */
		if (!(err = parse_mode(v, 0400, 0644, &x)) && (x & 0133))
			err = -EINVAL;
		cfg->shm_mode = err ? cfg->shm_mode : (mode_t)x;
	} else if (key_is(s, n, "breaker", "telemetry_mode")) {
		if (!(err = parse_mode(v, 0600, 0666, &x)) && (x & 0111))
			err = -EINVAL;
		/* telemetry feeds the rules: whoever may write it may keep a rule
		 * from tripping (a forged Report by another route). Engines write
		 * it through a group, never as everyone. */
		if (!err && (x & 0002))
			return fail(
			    c, line,
			    "bad value '%s' for 'telemetry_mode': writable by "
			    "others, who could forge any strategy's telemetry and "
			    "blind its rules; give engines breakerd's group and "
			    "use 0660 (0600 .. 0664)%s",
			    v, "");
		cfg->tel_mode = err ? cfg->tel_mode : (mode_t)x;
	} else if (key_is(s, n, "commands", "max_message_bytes")) {
		if (!(err = parse_u64(v, 1024, 1 << 20, &x)))
			cfg->max_msg = (uint32_t)x;
	} else if (key_is(s, n, "commands", "reason_max_bytes")) {
		/* bounded so that every audit record fits BK_AUDIT_RECORD_MAX */
		if (!(err = parse_u64(v, 16, 2048, &x)))
			cfg->reason_max = (uint32_t)x;
	} else if (key_is(s, n, "commands", "ipc_url")) {
		err = strncmp(v, "ipc://", 6) ? -EINVAL
		                              : set_str(cfg->cmd_url, BK_URL_MAX, v);
		c->urls_set |= err ? 0 : 1;
	} else if (key_is(s, n, "commands", "pub_url")) {
		err = strncmp(v, "ipc://", 6) ? -EINVAL
		                              : set_str(cfg->pub_url, BK_URL_MAX, v);
		c->urls_set |= err ? 0 : 2;
	} else if (key_is(s, n, "commands", "local_url")) {
		/* sun_path holds 107 bytes */
		err = (*v && (strncmp(v, "unix://", 7) || strlen(v) - 7 > 107))
		          ? -EINVAL
		          : set_str(cfg->local_url, BK_URL_MAX, v);
		c->urls_set |= err ? 0 : 16;
	} else if (key_is(s, n, "commands", "tcp_url")) {
		err = (*v && strncmp(v, "tcp://", 6) && strncmp(v, "tls+tcp://", 10))
		          ? -EINVAL
		          : set_str(cfg->tcp_url, BK_URL_MAX, v);
		c->tcp_line = line;
	} else if (key_is(s, n, "commands", "allow_plaintext_loopback")) {
		err = parse_bool(v, &cfg->allow_plaintext_loopback);
	} else if (key_is(s, n, "commands", "idle_timeout_ms")) {
		if (!(err = parse_u64(v, 100, 3600 * 1000, &x)))
			cfg->idle_timeout_ms = (uint32_t)x;
	} else if (key_is(s, n, "commands", "max_conns_per_uid")) {
		if (!(err = parse_u64(v, 1, 1000000, &x)))
			cfg->max_conns_per_uid = (uint32_t)x;
	} else if (key_is(s, n, "commands", "socket_mode")) {
		if (!(err = parse_mode(v, 0600, 0777, &x)))
			cfg->sock_mode = (mode_t)x;
	} else if (strcmp(s, "auth") == 0) {
		return handle_auth(c, n, v);
	} else if (strcmp(s, "tls") == 0) {
		return handle_tls(c, n, v);
	} else if (key_is(s, n, "strategies", "names")) {
		err = parse_strategies(cfg->strategies, &cfg->n_strategies, v);
		if (err)
			return fail(c, line,
			            "bad names = %s: strategy names are 1-39 bytes of "
			            "[A-Za-z0-9._:-]%s, at most 256 of them",
			            v, "");
	} else if (key_is(s, n, "strategies", "remote")) {
		err = parse_strategies(cfg->remote, &cfg->n_remote, v);
		if (err)
			return fail(c, line,
			            "bad remote = %s: strategy names (1-39 bytes of "
			            "[A-Za-z0-9._:-]%s) whose telemetry comes by Report",
			            v, "");
	} else if (key_is(s, n, "metrics", "listen")) {
		bool lo;
		err = *v && bk_listen_parse(v, &lo)
		          ? -EINVAL
		          : set_str(cfg->metrics_listen, sizeof(cfg->metrics_listen), v);
		c->metrics_line = c->line;
	} else if (key_is(s, n, "metrics", "allow_remote")) {
		if (strcmp(v, "true") && strcmp(v, "false"))
			err = -EINVAL;
		cfg->metrics_allow_remote = strcmp(v, "true") == 0;
	} else {
		return fail(c, line, "unknown key '%s' in section [%s]", n, s);
	}
	if (err)
		return fail(c, line, "bad value '%s' for '%s'", v, n);
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
			fail(c, c->line, "a NUL byte in the file%s%s: not a text config",
			     "", "");
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
		char what[64];

		snprintf(what, sizeof(what), "%d", len - 2);
		fail(c, c->line,
		     "longer than %s bytes%s: split it (breakerd would read the rest as "
		     "a line of its own)",
		     what, "");
		return NULL;
	}
	buf[n] = '\0';
	return n ? buf : NULL;
}

int bk_config_load(struct bk_config *cfg, const char *path, char *err, size_t errlen)
{
	struct load_ctx c = {.cfg = *cfg, .err = err, .errlen = errlen};
	char cmd_url[BK_URL_MAX], pub_url[BK_URL_MAX], local_url[BK_URL_MAX];
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
	    metrics_invalid(&c, err, errlen) || transport_invalid(&c, err, errlen))
		return -EINVAL;
	/* Paths follow instance/run_dir/state_dir unless set explicitly. */
	if ((c.urls_set & 12) != 12)
		default_dirs_keep(&c.cfg, c.urls_set & 4, c.urls_set & 8);
	memcpy(cmd_url, c.cfg.cmd_url, sizeof(cmd_url));
	memcpy(pub_url, c.cfg.pub_url, sizeof(pub_url));
	memcpy(local_url, c.cfg.local_url, sizeof(local_url));
	bk_config_derive(&c.cfg);
	if (c.urls_set & 1)
		memcpy(c.cfg.cmd_url, cmd_url, sizeof(cmd_url));
	if (c.urls_set & 2)
		memcpy(c.cfg.pub_url, pub_url, sizeof(pub_url));
	if (c.urls_set & 16)
		memcpy(c.cfg.local_url, local_url, sizeof(local_url));
	*cfg = c.cfg;
	return 0;
}
