/*
 * bk_tls - an nng TLS engine on OpenSSL that remembers the client
 * certificate's CN (see bk_tls.h for why), and the configs built on it.
 *
 * nng calls the engine with the connection's lock held, from its own
 * threads; the engine keeps no state outside its connection and config
 * objects but the one thread-local that bk_tls_peer() reads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/engine.h>

#include "bk_tls.h"

#define PEM_MAX (1u << 20)

struct nng_tls_engine_config {
	SSL_CTX *ctx;
	nng_tls_mode mode;
	char *server_name; /* client: the name the server's certificate carries */
};

struct nng_tls_engine_conn {
	void *tls; /* nng's connection, for nng_tls_engine_send/recv */
	SSL *ssl;
	bool verified;      /* handshake done and the chain verified */
	char cn[BK_CN_MAX]; /* the peer's only subject CN, or "" */
};

/* What the last NNG_OPT_TLS_VERIFIED question on this thread found. */
static __thread struct {
	bool asked;
	bool verified;
	char cn[BK_CN_MAX];
} last_peer;

/* ---- the BIO: OpenSSL's records go through nng's TCP stream ---------------- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *buf, size_t len, size_t *done)
{
	struct nng_tls_engine_conn *ec = BIO_get_data(b);
	size_t n = len;
	int rv;

	BIO_clear_retry_flags(b);
	rv = nng_tls_engine_send(ec->tls, (const uint8_t *)buf, &n);
	if (rv == NNG_EAGAIN)
		BIO_set_retry_write(b);
	if (rv != 0)
		return 0;
	*done = n;
	return 1;
}

static int bio_read(BIO *b, char *buf, size_t len, size_t *done)
{
	struct nng_tls_engine_conn *ec = BIO_get_data(b);
	size_t n = len;
	int rv;

	BIO_clear_retry_flags(b);
	rv = nng_tls_engine_recv(ec->tls, (uint8_t *)buf, &n);
	if (rv == NNG_EAGAIN)
		BIO_set_retry_read(b);
	if (rv != 0)
		return 0;
	*done = n;
	return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH; /* nng sends what it is given */
}

static void bio_method_init(void)
{
	BIO_METHOD *m =
	    BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "breaker-nng");

	if (m && BIO_meth_set_write_ex(m, bio_write) &&
	    BIO_meth_set_read_ex(m, bio_read) && BIO_meth_set_ctrl(m, bio_ctrl))
		bio_method = m;
	else
		BIO_meth_free(m);
}

/* ---- connections ---------------------------------------------------------------- */

/* The subject's CN, only if there is exactly one, as UTF-8 without NULs. */
static void peer_cn(X509 *crt, char *cn, size_t len)
{
	X509_NAME *nm = X509_get_subject_name(crt);
	int i = X509_NAME_get_index_by_NID(nm, NID_commonName, -1);
	unsigned char *u = NULL;
	int n;

	cn[0] = '\0';
	if (i < 0 || X509_NAME_get_index_by_NID(nm, NID_commonName, i) >= 0)
		return; /* none, or two: which one would a role mean? */
	n = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i)));
	/* an embedded NUL could make "operator\0x" match "operator" */
	if (n > 0 && (size_t)n < len && !memchr(u, 0, (size_t)n)) {
		memcpy(cn, u, (size_t)n);
		cn[n] = '\0';
	}
	OPENSSL_free(u);
}

static int conn_init(struct nng_tls_engine_conn *ec, void *tls,
                     struct nng_tls_engine_config *cfg)
{
	BIO *bio;

	pthread_once(&bio_once, bio_method_init);
	ec->tls = tls;
	if (!bio_method || !(ec->ssl = SSL_new(cfg->ctx)))
		return NNG_ENOMEM;
	if (!(bio = BIO_new(bio_method))) {
		SSL_free(ec->ssl);
		ec->ssl = NULL;
		return NNG_ENOMEM;
	}
	BIO_set_data(bio, ec);
	BIO_set_init(bio, 1);
	SSL_set_bio(ec->ssl, bio, bio);
	if (cfg->mode == NNG_TLS_MODE_SERVER) {
		SSL_set_accept_state(ec->ssl);
		return 0;
	}
	SSL_set_connect_state(ec->ssl);
	if (cfg->server_name && (!SSL_set_tlsext_host_name(ec->ssl, cfg->server_name) ||
	                         !SSL_set1_host(ec->ssl, cfg->server_name)))
		return NNG_ENOMEM;
	return 0;
}

static void conn_fini(struct nng_tls_engine_conn *ec)
{
	SSL_free(ec->ssl); /* and the BIO */
	ec->ssl = NULL;
}

static void conn_close(struct nng_tls_engine_conn *ec)
{
	ERR_clear_error();
	SSL_shutdown(ec->ssl); /* best effort close_notify */
}

/* An SSL_* call's result as nng's: 0, NNG_EAGAIN or an error. */
static int ssl_result(struct nng_tls_engine_conn *ec, int rv)
{
	switch (SSL_get_error(ec->ssl, rv)) {
	case SSL_ERROR_NONE:
		return 0;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return NNG_EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return NNG_ECLOSED;
	default:
		return SSL_get_verify_result(ec->ssl) != X509_V_OK ? NNG_EPEERAUTH
		                                                   : NNG_ECRYPTO;
	}
}

static int conn_handshake(struct nng_tls_engine_conn *ec)
{
	X509 *crt;
	int rv;

	ERR_clear_error(); /* the queue is per thread, and nng's threads are shared */
	if ((rv = SSL_do_handshake(ec->ssl)) != 1)
		return ssl_result(ec, rv);
	crt = SSL_get0_peer_certificate(ec->ssl);
	ec->verified = crt && SSL_get_verify_result(ec->ssl) == X509_V_OK;
	if (crt)
		peer_cn(crt, ec->cn, sizeof(ec->cn));
	return 0;
}

static int conn_recv(struct nng_tls_engine_conn *ec, uint8_t *buf, size_t *len)
{
	size_t n = 0;
	int rv;

	ERR_clear_error();
	if ((rv = SSL_read_ex(ec->ssl, buf, *len, &n)) == 1) {
		*len = n;
		return 0;
	}
	return ssl_result(ec, rv);
}

static int conn_send(struct nng_tls_engine_conn *ec, const uint8_t *buf, size_t *len)
{
	size_t n = 0;
	int rv;

	ERR_clear_error();
	if ((rv = SSL_write_ex(ec->ssl, buf, *len, &n)) == 1) {
		*len = n;
		return 0;
	}
	return ssl_result(ec, rv);
}

/* Called, synchronously, for nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED). */
static bool conn_verified(struct nng_tls_engine_conn *ec)
{
	last_peer.asked = true;
	last_peer.verified = ec->verified;
	memcpy(last_peer.cn, ec->cn, sizeof(last_peer.cn));
	return ec->verified;
}

/* ---- configs ---------------------------------------------------------------------- */

static int config_init(struct nng_tls_engine_config *cfg, nng_tls_mode mode)
{
	bool server = mode == NNG_TLS_MODE_SERVER;

	cfg->mode = mode;
	cfg->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!cfg->ctx)
		return NNG_ENOMEM;
	SSL_CTX_set_min_proto_version(cfg->ctx, TLS1_2_VERSION);
	/* nng's sends may complete partly and come back with another buffer */
	SSL_CTX_set_mode(cfg->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	                               SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* nng's defaults: servers do not ask, clients verify */
	SSL_CTX_set_verify(cfg->ctx, server ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
	return 0;
}

static void config_fini(struct nng_tls_engine_config *cfg)
{
	SSL_CTX_free(cfg->ctx);
	free(cfg->server_name);
}

static int config_server(struct nng_tls_engine_config *cfg, const char *name)
{
	char *s = strdup(name);

	if (!s)
		return NNG_ENOMEM;
	free(cfg->server_name);
	cfg->server_name = s;
	return 0;
}

static int config_auth(struct nng_tls_engine_config *cfg, nng_tls_auth_mode mode)
{
	int v = SSL_VERIFY_NONE;

	if (mode == NNG_TLS_AUTH_MODE_OPTIONAL)
		v = SSL_VERIFY_PEER;
	else if (mode == NNG_TLS_AUTH_MODE_REQUIRED)
		v = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	else if (mode != NNG_TLS_AUTH_MODE_NONE)
		return NNG_EINVAL;
	SSL_CTX_set_verify(cfg->ctx, v, NULL);
	return 0;
}

/* Every certificate in pem into the store (and, on a server, the CA list). */
static int add_cas(struct nng_tls_engine_config *cfg, const char *pem)
{
	X509_STORE *st = SSL_CTX_get_cert_store(cfg->ctx);
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x;
	int n = 0;

	if (!bio)
		return NNG_ENOMEM;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		if (X509_STORE_add_cert(st, x) == 1 &&
		    (cfg->mode != NNG_TLS_MODE_SERVER ||
		     SSL_CTX_add_client_CA(cfg->ctx, x)))
			n++;
		X509_free(x);
	}
	BIO_free(bio);
	ERR_clear_error(); /* the end of the PEM stream is an "error" */
	return n ? 0 : NNG_EINVAL;
}

/* CRLs: a revoked client certificate then fails the handshake. */
static int add_crls(struct nng_tls_engine_config *cfg, const char *pem)
{
	X509_STORE *st = SSL_CTX_get_cert_store(cfg->ctx);
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509_CRL *crl;
	int n = 0;

	if (!bio)
		return NNG_ENOMEM;
	while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL))) {
		n += X509_STORE_add_crl(st, crl) == 1;
		X509_CRL_free(crl);
	}
	BIO_free(bio);
	ERR_clear_error();
	if (n)
		X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
	return 0;
}

static int config_ca_chain(struct nng_tls_engine_config *cfg, const char *certs,
                           const char *crl)
{
	int rv = add_cas(cfg, certs);

	return rv ? rv : crl ? add_crls(cfg, crl) : 0;
}

/* A key's passphrase: the given one, never a prompt on the terminal. */
static int pass_cb(char *buf, int size, int rwflag, void *u)
{
	size_t n = u ? strlen(u) : 0;

	(void)rwflag;
	if (!u || n >= (size_t)size)
		return 0;
	memcpy(buf, u, n);
	return (int)n;
}

static int config_own_cert(struct nng_tls_engine_config *cfg, const char *cert,
                           const char *key, const char *pass)
{
	BIO *cb = BIO_new_mem_buf(cert, -1), *kb = BIO_new_mem_buf(key, -1);
	EVP_PKEY *pk = NULL;
	X509 *x = NULL;
	int rv = NNG_EINVAL;

	if (!cb || !kb)
		goto out;
	if (!(x = PEM_read_bio_X509(cb, NULL, NULL, NULL)) ||
	    SSL_CTX_use_certificate(cfg->ctx, x) != 1)
		goto out;
	X509_free(x);
	while ((x = PEM_read_bio_X509(cb, NULL, NULL, NULL))) /* the chain, if any */
		if (SSL_CTX_add0_chain_cert(cfg->ctx, x) != 1)
			goto out;
	if ((pk = PEM_read_bio_PrivateKey(kb, NULL, pass_cb, (void *)pass)) &&
	    SSL_CTX_use_PrivateKey(cfg->ctx, pk) == 1 &&
	    SSL_CTX_check_private_key(cfg->ctx) == 1)
		rv = 0;
out:
	X509_free(x);
	EVP_PKEY_free(pk);
	BIO_free(cb);
	BIO_free(kb);
	ERR_clear_error();
	return rv;
}

static int config_version(struct nng_tls_engine_config *cfg, nng_tls_version lo,
                          nng_tls_version hi)
{
	/* nng's numbers are the protocol's, as OpenSSL's are */
	if (lo < NNG_TLS_1_2 || hi > NNG_TLS_1_3 || lo > hi)
		return NNG_ENOTSUP;
	if (!SSL_CTX_set_min_proto_version(cfg->ctx, (int)lo) ||
	    !SSL_CTX_set_max_proto_version(cfg->ctx, (int)hi))
		return NNG_ENOTSUP;
	return 0;
}

static nng_tls_engine_conn_ops conn_ops = {
    .size = sizeof(struct nng_tls_engine_conn),
    .init = conn_init,
    .fini = conn_fini,
    .close = conn_close,
    .handshake = conn_handshake,
    .recv = conn_recv,
    .send = conn_send,
    .verified = conn_verified,
};

static nng_tls_engine_config_ops config_ops = {
    .size = sizeof(struct nng_tls_engine_config),
    .init = config_init,
    .fini = config_fini,
    .server = config_server,
    .auth = config_auth,
    .ca_chain = config_ca_chain,
    .own_cert = config_own_cert,
    .version = config_version,
};

static const nng_tls_engine engine = {
    .version = NNG_TLS_ENGINE_VERSION,
    .config_ops = &config_ops,
    .conn_ops = &conn_ops,
    .name = "breaker-openssl",
    .description = "breakerd's OpenSSL engine (peer CN for roles)",
    .fips_mode = false,
};

int bk_tls_engine_register(void)
{
	int rv = nng_tls_engine_register(&engine);

	return rv ? -ENOTSUP : 0;
}

int bk_tls_peer(nng_pipe p, char *cn, size_t len)
{
	bool v = false;
	int rv;

	last_peer.asked = false;
	rv = nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &v);
	if (rv == NNG_ENOTSUP)
		return 0; /* IPC, plain TCP: no TLS at all */
	if (rv != 0)
		return -ENOENT; /* the pipe is gone: nobody to ask */
	if (!last_peer.asked || !v || !last_peer.verified)
		return -EACCES;
	snprintf(cn, len, "%s", last_peer.cn);
	return 1;
}

/* ---- configs from files -------------------------------------------------------------
 */

/* A whole PEM file, NUL-terminated; free() it. */
static char *read_pem(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n = 0;
	long len;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && len < PEM_MAX &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1)))
		n = fread(buf, 1, (size_t)len, f);
	fclose(f);
	if (!buf) {
		snprintf(err, errlen, "%s: unreadable or over %u bytes", path, PEM_MAX);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* cert + key (both or neither) and the CA into cfg. */
static int load_files(nng_tls_config *cfg, const char *cert_file, const char *key_file,
                      const char *ca_file, char *err, size_t errlen)
{
	char *cert = NULL, *key = NULL;
	int rv;

	if ((rv = nng_tls_config_ca_file(cfg, ca_file)) != 0) {
		snprintf(err, errlen, "CA file %s: %s (PEM certificates expected)",
		         ca_file, nng_strerror(rv));
		return -EINVAL;
	}
	if (!cert_file || !key_file)
		return 0;
	if (!(cert = read_pem(cert_file, err, errlen)) ||
	    !(key = read_pem(key_file, err, errlen))) {
		free(cert);
		return -EINVAL;
	}
	if ((rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0)
		snprintf(err, errlen,
		         "certificate %s / key %s: %s (PEM, matching, key not "
		         "encrypted)",
		         cert_file, key_file, nng_strerror(rv));
	free(cert);
	free(key);
	return rv ? -EINVAL : 0;
}

int bk_tls_server_config(nng_tls_config **cfg, const char *cert_file,
                         const char *key_file, const char *ca_file, char *err,
                         size_t errlen)
{
	int rv;

	if ((rv = nng_tls_config_alloc(cfg, NNG_TLS_MODE_SERVER)) != 0) {
		snprintf(err, errlen, "TLS: %s", nng_strerror(rv));
		return -ENOTSUP;
	}
	if ((rv = load_files(*cfg, cert_file, key_file, ca_file, err, errlen)) < 0 ||
	    (rv = nng_tls_config_auth_mode(*cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
	    (rv = nng_tls_config_version(*cfg, NNG_TLS_1_2, NNG_TLS_1_3)) != 0) {
		if (rv > 0)
			snprintf(err, errlen, "TLS: %s", nng_strerror(rv));
		nng_tls_config_free(*cfg);
		*cfg = NULL;
		return -EINVAL;
	}
	return 0;
}

int bk_tls_client_config(nng_tls_config **cfg, const char *cert_file,
                         const char *key_file, const char *ca_file,
                         const char *server_name, char *err, size_t errlen)
{
	int rv;

	if ((rv = nng_tls_config_alloc(cfg, NNG_TLS_MODE_CLIENT)) != 0) {
		snprintf(err, errlen, "TLS: %s", nng_strerror(rv));
		return -ENOTSUP;
	}
	if ((rv = load_files(*cfg, cert_file, key_file, ca_file, err, errlen)) < 0 ||
	    (rv = nng_tls_config_auth_mode(*cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
	    (server_name && (rv = nng_tls_config_server_name(*cfg, server_name)) != 0)) {
		if (rv > 0)
			snprintf(err, errlen, "TLS: %s", nng_strerror(rv));
		nng_tls_config_free(*cfg);
		*cfg = NULL;
		return -EINVAL;
	}
	return 0;
}
