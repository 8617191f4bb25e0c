#include <errno.h>
#include <stdlib.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "bk_rpc.h"

int bk_rpc_errno(int nng_err)
{
	switch (nng_err) {
	case 0:
		return 0;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECONNREFUSED:
	case NNG_ENOENT:
		return -ECONNREFUSED;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
		return -EINVAL;
	case NNG_EPERM:
		return -EPERM;
	case NNG_EMSGSIZE:
		return -EMSGSIZE;
	case NNG_ESYSERR ... NNG_ESYSERR + 4095:
		return -(nng_err - NNG_ESYSERR);
	default:
		return -EIO;
	}
}

int bk_rpc_open(struct bk_rpc *r, const char *url, int timeout_ms)
{
	int rv;

	r->open = 0;
	if ((rv = nng_req0_open(&r->sock)) != 0)
		return bk_rpc_errno(rv);
	/* Synchronous dial: an absent daemon is reported now, not as a timeout. */
	if ((rv =
	         nng_setopt_ms(r->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) ||
	    (rv = nng_setopt_ms(r->sock, NNG_OPT_RECVTIMEO, timeout_ms)) ||
	    (rv = nng_setopt_ms(r->sock, NNG_OPT_SENDTIMEO, timeout_ms)) ||
	    (rv = nng_setopt_size(r->sock, NNG_OPT_RECVMAXSZ, 1u << 20)) ||
	    (rv = nng_dial(r->sock, url, NULL, 0))) {
		nng_close(r->sock);
		return bk_rpc_errno(rv);
	}
	r->open = 1;
	return 0;
}

void bk_rpc_close(struct bk_rpc *r)
{
	if (r->open)
		nng_close(r->sock);
	r->open = 0;
}

int bk_rpc_call(struct bk_rpc *r, const Breaker__Request *req, Breaker__Reply **reply)
{
	size_t len = breaker__request__get_packed_size(req);
	nng_msg *msg;
	int rv;

	*reply = NULL;
	if ((rv = nng_msg_alloc(&msg, len)) != 0)
		return bk_rpc_errno(rv);
	breaker__request__pack(req, nng_msg_body(msg));
	if ((rv = nng_sendmsg(r->sock, msg, 0)) != 0) {
		nng_msg_free(msg);
		return bk_rpc_errno(rv);
	}
	if ((rv = nng_recvmsg(r->sock, &msg, 0)) != 0)
		return bk_rpc_errno(rv);
	*reply = breaker__reply__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
	nng_msg_free(msg);
	return *reply ? 0 : -EBADMSG;
}

bool bk_rpc_ping(const char *url, int timeout_ms)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__StatusRequest sr = BREAKER__STATUS_REQUEST__INIT;
	Breaker__Reply *rep = NULL;
	struct bk_rpc r;
	bool ok;

	if (bk_rpc_open(&r, url, timeout_ms) < 0)
		return false;
	req.cmd_case = BREAKER__REQUEST__CMD_STATUS;
	req.status = &sr;
	ok = bk_rpc_call(&r, &req, &rep) == 0 && rep->status == BREAKER__STATUS__OK;
	if (rep)
		breaker__reply__free_unpacked(rep, NULL);
	bk_rpc_close(&r);
	return ok;
}
