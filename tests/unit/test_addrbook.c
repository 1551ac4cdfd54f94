/* test_addrbook.c -- known peer addresses: dedup, the 2,000 cap, which entries give way. */
#include <arpa/inet.h>
#include <check.h>
#include <string.h>

#include "peer/addrbook.h"

static struct sockaddr_storage v4(uint32_t ip, uint16_t port)
{
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *a = (struct sockaddr_in *)&ss;
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(ip);
  a->sin_port = htons(port);
  return ss;
}

START_TEST(test_dedup_and_families)
{
  struct addrbook b;
  ck_assert_int_eq(addrbook_init(&b, 10), 0);
  bool added;
  struct sockaddr_storage a = v4(0x7f000001, 6881), c = v4(0x7f000001, 6882);
  struct addr_entry *e = addrbook_add(&b, (struct sockaddr *)&a, false, &added);
  ck_assert_ptr_nonnull(e);
  ck_assert(added);
  ck_assert_ptr_eq(addrbook_add(&b, (struct sockaddr *)&a, true, &added), e);   /* same one */
  ck_assert(!added);
  ck_assert(e->manual);                                                          /* now manual */
  ck_assert_ptr_nonnull(addrbook_add(&b, (struct sockaddr *)&c, false, &added)); /* same IP, other port */
  ck_assert(added);
  ck_assert_uint_eq(b.n, 2);
  struct sockaddr_storage z = v4(0x7f000001, 0);
  ck_assert_ptr_null(addrbook_add(&b, (struct sockaddr *)&z, false, &added));    /* port 0 */
  struct sockaddr_storage u;
  memset(&u, 0, sizeof u);
  u.ss_family = AF_UNIX;
  ck_assert_ptr_null(addrbook_add(&b, (struct sockaddr *)&u, false, &added));
  struct sockaddr_storage s6;
  memset(&s6, 0, sizeof s6);
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&s6;
  a6->sin6_family = AF_INET6;
  a6->sin6_addr.s6_addr[15] = 1;
  a6->sin6_port = htons(6881);
  ck_assert_ptr_nonnull(addrbook_add(&b, (struct sockaddr *)&s6, false, &added));
  ck_assert(added);
  ck_assert(!addrbook_same_addr(&s6, (struct sockaddr *)&a));
  ck_assert_uint_eq(b.n, 3);
  addrbook_free(&b);
}
END_TEST

/* Full: 2,500 offered, 2,000 kept; only an address that keeps failing (and
 * is neither connected nor given by hand) makes room; entries never move. */
START_TEST(test_cap_and_eviction)
{
  struct addrbook b;
  ck_assert_int_eq(addrbook_init(&b, ADDRBOOK_MAX), 0);
  bool added;
  for (uint32_t i = 0; i < ADDRBOOK_MAX + 500; i++) {
    struct sockaddr_storage a = v4(0x0a000000 + i, 6881);
    addrbook_add(&b, (struct sockaddr *)&a, false, &added);
    ck_assert(added == (i < ADDRBOOK_MAX));
  }
  ck_assert_uint_eq(b.n, ADDRBOOK_MAX);
  struct addr_entry *first = addrbook_at(&b, 0);
  struct sockaddr_storage extra = v4(0x0b000001, 6881);
  ck_assert_ptr_null(addrbook_add(&b, (struct sockaddr *)&extra, false, &added));  /* no one failing */
  addrbook_at(&b, 7)->fails = 2;
  addrbook_at(&b, 7)->connected = true;                       /* connected: stays */
  addrbook_at(&b, 9)->fails = 1;
  addrbook_at(&b, 9)->manual = true;                          /* manual: stays */
  ck_assert_ptr_null(addrbook_add(&b, (struct sockaddr *)&extra, false, &added));
  addrbook_at(&b, 11)->fails = 3;                             /* this one gives way */
  struct addr_entry *e = addrbook_add(&b, (struct sockaddr *)&extra, false, &added);
  ck_assert_ptr_eq(e, addrbook_at(&b, 11));
  ck_assert(added);
  ck_assert_uint_eq(e->fails, 0);
  ck_assert(addrbook_same_addr(&e->addr, (struct sockaddr *)&extra));
  ck_assert_ptr_eq(addrbook_at(&b, 0), first);
  ck_assert_uint_eq(b.n, ADDRBOOK_MAX);
  addrbook_free(&b);
}
END_TEST

Suite *addrbook_suite(void)
{
  Suite *s = suite_create("addrbook");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_dedup_and_families);
  tcase_add_test(tc, test_cap_and_eviction);
  suite_add_tcase(s, tc);
  return s;
}
