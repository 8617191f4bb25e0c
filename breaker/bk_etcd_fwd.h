/*
 * bk_etcd_fwd - `--firm` trips and resumes forwarded by the CLI to this
 * breakerd (docs/firmwide.md): authorised like the local command (the same
 * bk_cmd_auth path already ran; the two-person rule for a global resume),
 * audited here (FIRM_FORWARDED), then put (trip) or compared-and-set
 * (resume) in etcd by a thread of its own: the loop never waits for etcd.
 * The reply goes when etcd answers or the request times out, with the
 * revision. The mirror applies the change as any other host's.
 */
#ifndef BK_ETCD_FWD_H
#define BK_ETCD_FWD_H

struct bk_cmd;
struct bk_daemon;

/* Start/stop the forwarding thread (with bk_etcd_start/stop). 0 or -errno. */
int bk_fwd_start(struct bk_daemon *d);
void bk_fwd_stop(struct bk_daemon *d);

/* The loop, each tick: answer the forwarded commands etcd has answered. */
void bk_fwd_tick(struct bk_daemon *d);

/* An authorised Trip/Resume with firm set: checked, audited, queued. */
void bk_fwd_command(struct bk_cmd *c);

#endif
