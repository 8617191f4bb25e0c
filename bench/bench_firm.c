/*
 * bench_firm - firm-wide halts through etcd, measured side by side in one run
 * on a real 3-member etcd cluster on loopback (etcd-server):
 *
 *   etcd put -> watch event   a bare put and a bare watch stream (the floor)
 *   firm trip -> engine       put of a firm latch -> an engine attached to
 *                             another breakerd ("host") reads HALTED
 *   local trip -> engine      the same host's own trip over nng IPC
 *   cut-off -> REDUCE_ONLY/HALTED  two of three members SIGSTOPped: time until
 *                             the host's engine reads each stage
 *
 * Measures, never asserts. CSV rows on stdout (bench/run.sh).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "bench.h"
#include "bk_etcd_kv.h"

#define MEMBERS 3

struct cluster {
	char dir[160];
	int cport[MEMBERS], pport[MEMBERS];
	pid_t pid[MEMBERS];
	char endpoints[256];
};

static int free_port(void)
{
	static int next;

	if (!next)
		next = 20000 + (getpid() % 20000);
	return next++;
}

static int cluster_start(struct cluster *c)
{
	char initial[512] = "", *o = initial;

	if (bench_tmpdir(c->dir, sizeof(c->dir), "firm") < 0)
		return -EIO;
	for (int i = 0; i < MEMBERS; i++) {
		c->cport[i] = free_port();
		c->pport[i] = free_port();
		o +=
		    sprintf(o, "%sm%d=http://127.0.0.1:%d", i ? "," : "", i, c->pport[i]);
		sprintf(c->endpoints + strlen(c->endpoints), "%shttp://127.0.0.1:%d",
		        i ? "," : "", c->cport[i]);
	}
	for (int i = 0; i < MEMBERS; i++) {
		char name[8], data[224], cu[48], pu[48], log[224];
		snprintf(name, sizeof(name), "m%d", i);
		snprintf(data, sizeof(data), "%s/m%d.etcd", c->dir, i);
		snprintf(log, sizeof(log), "%s/m%d.log", c->dir, i);
		snprintf(cu, sizeof(cu), "http://127.0.0.1:%d", c->cport[i]);
		snprintf(pu, sizeof(pu), "http://127.0.0.1:%d", c->pport[i]);
		char *argv[] = {"/usr/bin/etcd",
		                "--name",
		                name,
		                "--data-dir",
		                data,
		                "--listen-client-urls",
		                cu,
		                "--advertise-client-urls",
		                cu,
		                "--listen-peer-urls",
		                pu,
		                "--initial-advertise-peer-urls",
		                pu,
		                "--initial-cluster",
		                initial,
		                "--initial-cluster-state",
		                "new",
		                "--pre-vote=true",
		                NULL};
		if ((c->pid[i] = bench_spawn(argv, -1, log)) < 0)
			return -ENOENT;
	}
	struct bk_etcd_conn conn;
	cJSON *rep;
	int64_t rev;
	bk_etcd_conn_init(&conn, c->endpoints, 500);
	for (int i = 0; i < 600; i++) {
		if (bk_etcd_range_prefix(&conn, "/up/", false, false, &rep, &rev) == 0) {
			cJSON_Delete(rep);
			bk_etcd_conn_free(&conn);
			return 0;
		}
		bench_sleep_us(100000);
	}
	bk_etcd_conn_free(&conn);
	return -ETIMEDOUT;
}

static void cluster_stop(struct cluster *c)
{
	for (int i = 0; i < MEMBERS; i++)
		if (c->pid[i] > 0) {
			kill(c->pid[i], SIGCONT);
			kill(c->pid[i], SIGKILL);
			waitpid(c->pid[i], NULL, 0);
		}
	bench_rmtree(c->dir);
}

/* ---- a bare watch stream: the time each event arrives ---- */

struct watcher {
	char url[160], body[256];
	_Atomic uint64_t arrived; /* bench_now() of the latest event line */
	_Atomic uint32_t events;
	_Atomic bool stop;
	CURL *h;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
	struct watcher *w = ud;

	/* one line per WatchResponse; ours carry one event each */
	if (memmem(p, sz * n, "\"events\"", 8)) {
		atomic_store(&w->arrived, bench_now());
		atomic_fetch_add(&w->events, 1);
	}
	return sz * n;
}

static int on_xfer(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a, (void)b, (void)c, (void)d;
	return atomic_load(&((struct watcher *)ud)->stop);
}

static void *watch_thread(void *arg)
{
	struct watcher *w = arg;

	w->h = curl_easy_init();
	curl_easy_setopt(w->h, CURLOPT_URL, w->url);
	curl_easy_setopt(w->h, CURLOPT_POSTFIELDS, w->body);
	curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(w->h, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(w->h, CURLOPT_XFERINFOFUNCTION, on_xfer);
	curl_easy_setopt(w->h, CURLOPT_XFERINFODATA, w);
	curl_easy_setopt(w->h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_perform(w->h);
	curl_easy_cleanup(w->h);
	return NULL;
}

static void bare_put_watch(struct cluster *cl, size_t n, const char *setup)
{
	struct watcher w = {0};
	struct bk_etcd_conn conn;
	char key[64];
	double *v = calloc(n, sizeof(double));
	pthread_t t;
	size_t got = 0;

	bk_etcd_b64("/bench/k", 8, key, sizeof(key));
	snprintf(w.url, sizeof(w.url), "http://127.0.0.1:%d/v3/watch", cl->cport[1]);
	snprintf(w.body, sizeof(w.body), "{\"create_request\":{\"key\":\"%s\"}}", key);
	pthread_create(&t, NULL, watch_thread, &w);
	bench_sleep_us(300000);
	bk_etcd_conn_init(&conn, cl->endpoints, 2000);
	for (size_t i = 0; i < n; i++) {
		uint32_t before = atomic_load(&w.events);
		uint64_t t0 = bench_now(), end = t0 + 2000000000ull;
		char val[32];

		snprintf(val, sizeof(val), "%zu", i);
		if (bk_etcd_put(&conn, "/bench/k", val, 0) < 0)
			continue;
		while (atomic_load(&w.events) == before && bench_now() < end)
			;
		if (atomic_load(&w.events) != before)
			v[got++] = (double)(atomic_load(&w.arrived) - t0) / 1000.0;
		bench_sleep_us(2000);
	}
	atomic_store(&w.stop, true);
	pthread_join(t, NULL);
	bk_etcd_conn_free(&conn);
	struct bench_stats s;
	bench_stats(v, got, &s);
	bench_row("firm", "etcd put -> watch event (bare)", "us", &s, setup);
	free(v);
}

static bool mode_within(const struct bk_client *c, enum bk_mode want, uint64_t ns,
                        uint64_t *at)
{
	uint64_t end = bench_now() + ns;

	do {
		if (bk_check(c, BK_GLOBAL_ONLY) == want) {
			*at = bench_now();
			return true;
		}
	} while (bench_now() < end);
	return false;
}

static void firm_trips(struct cluster *cl, const struct bk_client *c, size_t n,
                       const char *setup)
{
	const char *key = "/breaker/v1/bench/latch/global/manual_halt";
	const char *val = "{\"mode\":\"HALTED\",\"actor\":\"bench\",\"uid\":0}";
	struct bk_etcd_conn conn;
	double *v = calloc(n, sizeof(double)), *r = calloc(n, sizeof(double));
	size_t got = 0, rgot = 0;
	uint64_t at;

	bk_etcd_conn_init(&conn, cl->endpoints, 2000);
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = bench_now();
		int64_t rev = bk_etcd_put(&conn, key, val, 0);

		if (rev < 0)
			continue;
		if (mode_within(c, BK_HALTED, 2000000000ull, &at))
			v[got++] = (double)(at - t0) / 1000.0;
		t0 = bench_now();
		if (bk_etcd_cas(&conn, key, rev, NULL) < 0)
			break;
		if (mode_within(c, BK_ACTIVE, 2000000000ull, &at))
			r[rgot++] = (double)(at - t0) / 1000.0;
		bench_sleep_us(2000);
	}
	bk_etcd_conn_free(&conn);
	struct bench_stats s;
	bench_stats(v, got, &s);
	bench_row("firm", "firm trip (etcd put) -> engine on another host HALTED", "us",
	          &s, setup);
	bench_stats(r, rgot, &s);
	bench_row("firm", "firm release (etcd txn) -> engine on another host ACTIVE",
	          "us", &s, setup);
	free(v);
	free(r);
}

/* A --firm trip as the CLI sends it: to breakerd, which authorises, audits
 * and puts on its etcd thread; the release straight in etcd (a txn). */
static void forwarded_trips(struct cluster *cl, const struct bench_daemon *d,
                            const struct bk_client *c, size_t n, const char *setup)
{
	const char *key = "/breaker/v1/bench/latch/global/manual_halt";
	struct bk_etcd_conn conn;
	struct bk_rpc rpc;
	double *v = calloc(n, sizeof(double));
	size_t got = 0;
	uint64_t at, id = 500000;

	if (bk_rpc_open(&rpc, d->cfg.cmd_url, 5000) < 0)
		return;
	bk_etcd_conn_init(&conn, cl->endpoints, 2000);
	for (size_t i = 0; i < n; i++) {
		Breaker__Request req = BREAKER__REQUEST__INIT;
		Breaker__Trip t = BREAKER__TRIP__INIT;
		Breaker__Reply *rep = NULL;
		int64_t rev = -1;

		t.has_firm = t.firm = 1;
		t.has_reason_code = t.has_mode = 1;
		t.reason_code = BREAKER__REASON_CODE__MANUAL_HALT;
		t.mode = BREAKER__MODE__MODE_HALTED;
		req.has_request_id = 1;
		req.request_id = ++id;
		req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
		req.trip = &t;
		uint64_t t0 = bench_now();
		if (bk_rpc_call(&rpc, &req, &rep) == 0 && rep->has_firm_revision)
			rev = (int64_t)rep->firm_revision;
		if (rep)
			breaker__reply__free_unpacked(rep, NULL);
		if (rev < 0)
			continue;
		if (mode_within(c, BK_HALTED, 2000000000ull, &at))
			v[got++] = (double)(at - t0) / 1000.0;
		if (bk_etcd_cas(&conn, key, rev, NULL) < 0)
			break;
		mode_within(c, BK_ACTIVE, 2000000000ull, &at);
		bench_sleep_us(2000);
	}
	bk_etcd_conn_free(&conn);
	struct bench_stats s;
	bench_stats(v, got, &s);
	bench_row("firm", "firm trip via breakerd (auth, audit, put) -> engine HALTED",
	          "us", &s, setup);
	free(v);
}

static void local_trips(const struct bench_daemon *d, const struct bk_client *c, size_t n,
                        const char *setup)
{
	struct bk_rpc rpc;
	double *v = calloc(n, sizeof(double));
	size_t got = 0;
	uint64_t at, id = 1;

	if (bk_rpc_open(&rpc, d->cfg.cmd_url, 5000) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = bench_now();

		if (bench_trip(&rpc, NULL, ++id) < 0)
			continue;
		if (mode_within(c, BK_HALTED, 2000000000ull, &at))
			v[got++] = (double)(at - t0) / 1000.0;
		bench_resume(&rpc, NULL, ++id);
		mode_within(c, BK_ACTIVE, 2000000000ull, &at);
	}
	struct bench_stats s;
	bench_stats(v, got, &s);
	bench_row("firm", "local trip (nng IPC, acked) -> engine HALTED", "us", &s,
	          setup);
	free(v);
}

static void cut_off(struct cluster *cl, const struct bench_daemon *d,
                    const struct bk_client *c, size_t rounds, const char *setup)
{
	double *ro = calloc(rounds, sizeof(double)), *ha = calloc(rounds, sizeof(double));
	size_t got = 0;
	struct bk_rpc rpc;
	uint64_t at, id = 1000000;

	bk_rpc_open(&rpc, d->cfg.cmd_url, 5000);
	for (size_t i = 0; i < rounds; i++) {
		uint64_t t0 = bench_now();
		bool ok;

		kill(cl->pid[1], SIGSTOP);
		kill(cl->pid[2], SIGSTOP);
		ok = mode_within(c, BK_REDUCE_ONLY, 30000000000ull, &at);
		ro[got] = (double)(at - t0) / 1e6;
		ok = ok && mode_within(c, BK_HALTED, 30000000000ull, &at);
		ha[got] = (double)(at - t0) / 1e6;
		got += ok;
		kill(cl->pid[1], SIGCONT);
		kill(cl->pid[2], SIGCONT);
		bench_sleep_us(3000000); /* heal, contact and catch-up */
		/* the operator's resume (forced, one step) once contact is back */
		for (int k = 0; k < 100 && bk_check(c, BK_GLOBAL_ONLY) != BK_ACTIVE;
		     k++) {
			Breaker__Request req = BREAKER__REQUEST__INIT;
			Breaker__Resume rs = BREAKER__RESUME__INIT;
			Breaker__Reply *rep = NULL;
			rs.has_reason_code = rs.has_force = rs.has_to = 1;
			rs.reason_code = BREAKER__REASON_CODE__AUTHORITY_LOST;
			rs.force = 1;
			rs.to = BREAKER__MODE__MODE_ACTIVE;
			rs.reason = "bench heal";
			req.has_request_id = 1;
			req.request_id = ++id;
			req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
			req.resume = &rs;
			if (bk_rpc_call(&rpc, &req, &rep) == 0)
				breaker__reply__free_unpacked(rep, NULL);
			bench_sleep_us(100000);
		}
	}
	struct bench_stats s;
	bench_stats(ro, got, &s);
	bench_row("firm", "cut off from quorum -> engine REDUCE_ONLY", "ms", &s, setup);
	bench_stats(ha, got, &s);
	bench_row("firm", "cut off from quorum -> engine HALTED", "ms", &s, setup);
}

int main(int argc, char **argv)
{
	bool quick = bench_quick(argc, argv);
	struct cluster cl = {0};
	struct bench_daemon d;
	struct bk_client c;
	char ini[512], setup[160];
	int rv;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if ((rv = cluster_start(&cl)) < 0) {
		fprintf(stderr,
		        "bench_firm: no etcd cluster (%s): is etcd-server installed?\n",
		        strerror(-rv));
		fprintf(stderr, "bench_firm: member logs in %s\n", cl.dir);
		for (int i = 0; i < MEMBERS; i++)
			if (cl.pid[i] > 0)
				kill(cl.pid[i], SIGKILL);
		return 0;
	}
	snprintf(
	    ini, sizeof(ini),
	    "[cluster]\nname = bench\nhost = b\nendpoints = %s\n", /* default T1, T2 */
	    cl.endpoints);
	if (bench_daemon_start(&d, "firm", ini, BENCH_CPU_SERVER) < 0 ||
	    bench_daemon_attach(&d, &c) < 0) {
		cluster_stop(&cl);
		return 1;
	}
	uint64_t at;
	mode_within(&c, BK_ACTIVE, 20000000000ull, &at);
	snprintf(setup, sizeof(setup), "etcd 3.4 x3 loopback, tick 100us, engine spins");
	bare_put_watch(&cl, bench_scale(quick, 300), setup);
	firm_trips(&cl, &c, bench_scale(quick, 300), setup);
	forwarded_trips(&cl, &d, &c, bench_scale(quick, 300), setup);
	local_trips(&d, &c, bench_scale(quick, 300), setup);
	snprintf(setup, sizeof(setup),
	         "T1 3500 ms, T2 5000 ms (defaults), probe 100 ms/300 ms");
	cut_off(&cl, &d, &c, quick ? 1 : 3, setup);
	bk_client_detach(&c);
	bench_daemon_stop(&d);
	cluster_stop(&cl);
	return 0;
}
