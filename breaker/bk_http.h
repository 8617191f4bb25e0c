/*
 * bk_http - one HTTP answer for nng's HTTP server handlers (/metrics,
 * /healthz, the status page): status, Content-Type, Cache-Control: no-store
 * (every answer is live state), one extra header when given (NULL: none),
 * and a copy of the body. On any nng error the aio finishes with it and the
 * client sees the connection close, never a half-built answer.
 */
#ifndef BK_HTTP_H
#define BK_HTTP_H

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stddef.h>
#include <stdint.h>

void bk_http_respond(nng_aio *aio, uint16_t code, const char *type, const char *hname,
                     const char *hvalue, const char *body, size_t len);

#endif
