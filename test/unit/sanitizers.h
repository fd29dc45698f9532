/*
 * sanitizers.h - sanitizer settings baked into every unit-test binary.
 * Include it from exactly one file per binary (each test_<mod>.c is one).
 *
 * Criterion runs each test in a child and looks only at its assertions and
 * its death: a TSan or UBSan report that lets the child go on would be
 * printed and the test would still pass, so the first report must kill it.
 */
#ifndef SPOUT_TEST_SANITIZERS_H
#define SPOUT_TEST_SANITIZERS_H

#if defined(__has_feature)
#if __has_feature(thread_sanitizer) && !defined(__SANITIZE_THREAD__)
#define __SANITIZE_THREAD__ 1 /* clang < 16 only has __has_feature */
#endif
#if __has_feature(address_sanitizer) && !defined(__SANITIZE_ADDRESS__)
#define __SANITIZE_ADDRESS__ 1
#endif
#endif

const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "halt_on_error=1";
}

const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

/* libcriterion's runner leaks 48 bytes when it runs tests in parallel; that
 * is not ours, and it would turn the run's exit status to 1. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libcriterion.so\n";
}

#if defined(__SANITIZE_THREAD__)
/*
 * Criterion cannot start under ThreadSanitizer without this (Criterion issue
 * #274, "Could not initialize inheritable arena"; ~29 of 30 runs abort).
 * Its sandbox maps a shared arena at
 *     0x200000000000 + (rand_r() & 0x3fffff) * 16 MiB
 * and gives up after 10 picks that mincore() shows as occupied. Under TSan
 * almost all of that range is shadow or PROT_NONE; the only application
 * range inside it is 0x550000000000..0x568000000000 (TSan's x86-64 mapping,
 * gcc 12 and clang 14 alike). The executable's definition interposes the
 * libc one for libcriterion, so this rand_r draws only from that window.
 * TSan builds only; no test calls rand_r.
 */
int rand_r(unsigned int *seed);
int rand_r(unsigned int *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (int)(0x350000u + (*seed >> 8) % 0x18000u);
}
#endif

#endif
