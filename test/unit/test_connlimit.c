/*
 * test_connlimit.c - per-address connection counting (src/connlimit.c),
 * including many threads taking and giving back slots at once.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <criterion/criterion.h>

#include "spout/connlimit.h"
#include "sanitizers.h"

static struct sp_ipaddr key(unsigned i)
{
	struct sp_ipaddr a = { .b = { [10] = 0xff, [11] = 0xff, [12] = 10 } };

	a.b[13] = (uint8_t)(i >> 16);
	a.b[14] = (uint8_t)(i >> 8);
	a.b[15] = (uint8_t)i;
	return a;
}

Test(connlimit, cap_per_key_and_release)
{
	struct sp_connlimit cl;
	struct sp_ipaddr a = key(1), b = key(2);

	cr_assert_eq(sp_connlimit_init(&cl, 3, 100), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(sp_connlimit_acquire(&cl, &a), 0);
	cr_expect_eq(sp_connlimit_acquire(&cl, &a), -EUSERS, "the 4th from one address");
	cr_expect_eq(sp_connlimit_acquire(&cl, &b), 0, "another address is not affected");
	cr_expect_eq(sp_connlimit_count(&cl, &a), 3);
	cr_expect_eq(sp_connlimit_keys(&cl), 2);
	sp_connlimit_release(&cl, &a);
	cr_expect_eq(sp_connlimit_acquire(&cl, &a), 0, "a freed slot can be taken again");
	for (int i = 0; i < 3; i++)
		sp_connlimit_release(&cl, &a);
	sp_connlimit_release(&cl, &b);
	cr_expect_eq(sp_connlimit_count(&cl, &a), 0);
	cr_expect_eq(sp_connlimit_keys(&cl), 0, "entries go away at zero");
	sp_connlimit_release(&cl, &a);   /* an extra release is harmless */
	cr_expect_eq(sp_connlimit_keys(&cl), 0);
	sp_connlimit_destroy(&cl);
}

Test(connlimit, zero_means_no_limit)
{
	struct sp_connlimit cl;
	struct sp_ipaddr a = key(1);

	cr_assert_eq(sp_connlimit_init(&cl, 0, 100), 0);
	for (int i = 0; i < 100000; i++)
		cr_assert_eq(sp_connlimit_acquire(&cl, &a), 0);
	cr_expect_eq(sp_connlimit_keys(&cl), 0, "nothing is counted");
	sp_connlimit_release(&cl, &a);
	sp_connlimit_destroy(&cl);
}

Test(connlimit, many_keys_collide_in_buckets)
{
	struct sp_connlimit cl;

	cr_assert_eq(sp_connlimit_init(&cl, 2, 16), 0);   /* tiny table: long chains */
	for (unsigned i = 0; i < 20000; i++) {
		struct sp_ipaddr a = key(i);
		cr_assert_eq(sp_connlimit_acquire(&cl, &a), 0);
	}
	cr_expect_eq(sp_connlimit_keys(&cl), 20000);
	for (unsigned i = 0; i < 20000; i += 2) {
		struct sp_ipaddr a = key(i);
		sp_connlimit_release(&cl, &a);
	}
	cr_expect_eq(sp_connlimit_keys(&cl), 10000);
	for (unsigned i = 1; i < 20000; i += 2) {
		struct sp_ipaddr a = key(i);
		cr_assert_eq(sp_connlimit_count(&cl, &a), 1);
	}
	sp_connlimit_destroy(&cl);   /* frees what is left */
}

#define THREADS 4
#define ROUNDS 20000

struct arg {
	struct sp_connlimit *cl;
	unsigned id;
	unsigned refused;
};

static void *churn(void *p)
{
	struct arg *a = p;

	for (unsigned r = 0; r < ROUNDS; r++) {
		/* every thread fights over the same 8 addresses */
		struct sp_ipaddr k = key(r % 8);
		if (sp_connlimit_acquire(a->cl, &k) == 0)
			sp_connlimit_release(a->cl, &k);
		else
			a->refused++;
	}
	return NULL;
}

Test(connlimit, threads_never_exceed_and_end_at_zero)
{
	struct sp_connlimit cl;
	pthread_t t[THREADS];
	struct arg args[THREADS];

	cr_assert_eq(sp_connlimit_init(&cl, 2, 64), 0);
	for (unsigned i = 0; i < THREADS; i++) {
		args[i] = (struct arg){ .cl = &cl, .id = i };
		cr_assert_eq(pthread_create(&t[i], NULL, churn, &args[i]), 0);
	}
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	cr_expect_eq(sp_connlimit_keys(&cl), 0, "every slot given back");
	for (unsigned i = 0; i < 8; i++) {
		struct sp_ipaddr k = key(i);
		cr_expect_eq(sp_connlimit_count(&cl, &k), 0);
	}
	sp_connlimit_destroy(&cl);
}
