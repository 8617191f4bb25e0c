/*
 * bk_tls - TLS for the command listener (tls+tcp://), with client
 * certificates mapped to roles by their subject CN.
 *
 * nng 1.5.2 (Debian's) can require and verify a client certificate, but has no
 * way to tell which one a pipe presented: NNG_OPT_TLS_PEER_CN came in 1.6. So
 * breakerd registers its own nng TLS engine, on OpenSSL (nng's public engine
 * API, supplemental/tls/engine.h): it verifies the chain as usual and keeps
 * the certificate's CN with the connection. The only per-pipe question nng
 * forwards to an engine is NNG_OPT_TLS_VERIFIED, answered synchronously on the
 * caller's thread; the engine notes the connection's CN in a thread-local as
 * it answers, and bk_tls_peer() reads it back. No nng internals are touched.
 */
#ifndef BK_TLS_H
#define BK_TLS_H

#include <stddef.h>
#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "bk_config.h" /* BK_CN_MAX */

/*
 * Make breakerd's engine nng's TLS engine for this process. Call before any
 * TLS listener is created. 0 or -errno.
 */
int bk_tls_engine_register(void);

/*
 * A server config for the command listener: our certificate and key, the CA
 * (and CRLs) that client certificates must chain to, client certificates
 * required. Files are PEM. 0 or -errno with err naming the file and problem.
 */
int bk_tls_server_config(nng_tls_config **cfg, const char *cert_file,
                         const char *key_file, const char *ca_file, char *err,
                         size_t errlen);

/*
 * A client config (the CLI, tests): ca_file verifies the server; cert and key
 * (both or neither) identify us. server_name: the name the server's
 * certificate must carry (NULL: chain only). Uses whichever engine the process
 * has (nng's own in the CLI). 0 or -errno with err set.
 */
int bk_tls_client_config(nng_tls_config **cfg, const char *cert_file,
                         const char *key_file, const char *ca_file,
                         const char *server_name, char *err, size_t errlen);

/*
 * Who is on pipe p: 1 and cn filled for a TLS peer whose certificate verified
 * (cn may be "" when the certificate has no single CN); 0 when p is not a TLS
 * pipe; -EACCES for a TLS pipe that did not verify or is not ours; -ENOENT
 * when the pipe is gone (its caller hung up before we read its message).
 */
int bk_tls_peer(nng_pipe p, char *cn, size_t len);

#endif
