/* rpc_client.c -- one blocking call to the daemon's control API over libcurl easy (for `shoal remote`). */
#include "peer/rpc_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"

static pthread_once_t rpc_client_once = PTHREAD_ONCE_INIT;
static CURLcode rpc_client_init_result = CURLE_FAILED_INIT;

static void rpc_client_global_init(void)
{
  rpc_client_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct rpc_client_sink {
  struct buf b;
  bool too_big;
  bool nomem;
};

static size_t rpc_client_write(char *p, size_t size, size_t nmemb, void *ud)
{
  struct rpc_client_sink *s = ud;
  size_t n = size * nmemb; /* curl guarantees size == 1 */
  int r = buf_append(&s->b, p, n);
  if (r == UV_E2BIG)
    s->too_big = true;
  else if (r != 0)
    s->nomem = true;
  return r == 0 ? n : 0;
}

static bool rpc_client_is_loopback(const char *host)
{
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

/* Copies the daemon's text into err as one printable line. */
static void rpc_client_copy_line(char *err, size_t errlen, const char *s)
{
  if (err == NULL || errlen == 0)
    return;
  size_t i = 0;
  for (; s[i] != '\0' && i + 1 < errlen; i++) {
    unsigned char ch = (unsigned char)s[i];
    err[i] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
  }
  err[i] = '\0';
}

static int rpc_client_curl_error(CURLcode cc, const struct rpc_client_sink *sink, const char *where,
                                 const char *detail, char *err, size_t errlen)
{
  const char *d = detail[0] != '\0' ? detail : curl_easy_strerror(cc);
  if (sink->too_big || cc == CURLE_FILESIZE_EXCEEDED)
    return shoal_fail(err, errlen, SHOAL_ETOOBIG, "the daemon's reply is larger than %u MiB", RPC_CLIENT_MAX_REPLY >> 20);
  if (sink->nomem || cc == CURLE_OUT_OF_MEMORY)
    return shoal_fail(err, errlen, UV_ENOMEM, "out of memory");
  switch (cc) {
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
    return shoal_fail(err, errlen, UV_ECONNREFUSED, "cannot reach the daemon at %s: %s", where, d);
  case CURLE_OPERATION_TIMEDOUT:
    return shoal_fail(err, errlen, UV_ETIMEDOUT, "the daemon at %s did not answer within %d s", where,
                      RPC_CLIENT_TIMEOUT_S);
  default:
    return shoal_fail(err, errlen, UV_EPROTO, "error talking to the daemon at %s: %s", where, d);
  }
}

int rpc_client_call(const char *host, uint16_t port, const char *token, const char *method, json_t *params,
                    json_t **result, long *http_status, char *err, size_t errlen)
{
  *result = NULL;
  if (http_status != NULL)
    *http_status = 0;
  if (host == NULL || host[0] == '\0' || token == NULL || method == NULL)
    return shoal_fail(err, errlen, UV_EINVAL, "no daemon address, token or method given");
  pthread_once(&rpc_client_once, rpc_client_global_init);
  if (rpc_client_init_result != CURLE_OK)
    return shoal_fail(err, errlen, UV_ENOMEM, "cannot initialise libcurl: %s", curl_easy_strerror(rpc_client_init_result));

  /* URL and the "HOST:PORT" shown in messages; IPv6 literals in brackets,
   * a zone's '%' escaped in the URL. */
  bool v6 = strchr(host, ':') != NULL;
  char where[300], url[400], url_host[260];
  size_t uh = 0;
  for (const char *h = host; *h != '\0'; h++) {
    if (uh + 4 > sizeof url_host)
      return shoal_fail(err, errlen, UV_EINVAL, "daemon address too long");
    if (*h == '%') {
      memcpy(url_host + uh, "%25", 3);
      uh += 3;
    } else {
      url_host[uh++] = *h;
    }
  }
  url_host[uh] = '\0';
  snprintf(where, sizeof where, v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
  snprintf(url, sizeof url, v6 ? "http://[%s]:%u/rpc" : "http://%s:%u/rpc", url_host, (unsigned)port);

  json_t *m = json_string(method);
  if (m == NULL)
    return shoal_fail(err, errlen, UV_EINVAL, "the method name is not valid UTF-8");
  json_t *req = json_object();
  json_t *p = params != NULL ? json_incref(params) : json_object();
  bool bad = req == NULL || p == NULL || json_object_set(req, "method", m) != 0 ||
             json_object_set(req, "params", p) != 0;
  json_decref(m);
  json_decref(p);
  if (bad) {
    json_decref(req);
    return shoal_fail(err, errlen, UV_ENOMEM, "cannot encode the request: out of memory");
  }
  char *body = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  if (body == NULL)
    return shoal_fail(err, errlen, UV_ENOMEM, "cannot encode the request");

  char auth[300], host_hdr[64];
  struct curl_slist *hdrs = NULL, *t;
  int r = 0;
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
  const char *lines[4] = { auth, "Content-Type: application/json", "Expect:", NULL };
  if (rpc_client_is_loopback(host)) {
    snprintf(host_hdr, sizeof host_hdr, "Host: localhost:%u", (unsigned)port);
    lines[3] = host_hdr;
  }
  for (size_t i = 0; i < 4 && r == 0; i++) {
    if (lines[i] == NULL)
      continue;
    t = curl_slist_append(hdrs, lines[i]);
    if (t == NULL)
      r = UV_ENOMEM;
    else
      hdrs = t;
  }
  CURL *h = r == 0 ? curl_easy_init() : NULL;
  if (h == NULL) {
    curl_slist_free_all(hdrs);
    free(body);
    return shoal_fail(err, errlen, UV_ENOMEM, "out of memory");
  }

  struct rpc_client_sink sink;
  memset(&sink, 0, sizeof sink);
  buf_init(&sink.b, RPC_CLIENT_MAX_REPLY);
  char detail[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never through a proxy from the environment */
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
#else
  curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTP);
#endif
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)RPC_CLIENT_TIMEOUT_S);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, rpc_client_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)RPC_CLIENT_MAX_REPLY);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, detail);

  CURLcode cc = curl_easy_perform(h);
  long status = 0;
  if (cc == CURLE_OK)
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
  curl_slist_free_all(hdrs);
  memset(auth, 0, sizeof auth);
  free(body);
  if (cc != CURLE_OK) {
    r = rpc_client_curl_error(cc, &sink, where, detail, err, errlen);
    buf_free(&sink.b);
    return r;
  }
  if (http_status != NULL)
    *http_status = status;

  json_error_t je;
  json_t *reply = json_loadb(sink.b.p != NULL ? (const char *)sink.b.p : "", sink.b.len, JSON_REJECT_DUPLICATES, &je);
  buf_free(&sink.b);
  if (status == 200) {
    json_t *res = json_is_object(reply) ? json_object_get(reply, "result") : NULL;
    if (res == NULL) {
      json_decref(reply);
      return shoal_fail(err, errlen, UV_EPROTO, "the daemon at %s sent a reply without a result", where);
    }
    *result = json_incref(res);
    json_decref(reply);
    return 0;
  }
  json_t *e = json_is_object(reply) ? json_object_get(reply, "error") : NULL;
  if (!json_is_string(e)) {
    json_decref(reply);
    return shoal_fail(err, errlen, UV_EPROTO, "%s answered HTTP %ld without an error message (is it the shoal daemon?)",
                      where, status);
  }
  rpc_client_copy_line(err, errlen, json_string_value(e));
  json_decref(reply);
  return SHOAL_EREMOTE;
}
