/* LD_PRELOAD shim for tests/test_slow_journal.py: every fsync/fdatasync on a file whose path
 * contains $IRLAMP_SLOW_FSYNC_DIR first sleeps $IRLAMP_SLOW_FSYNC_MS milliseconds, the way a
 * stalled SD card does. Everything else passes straight through to libc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int slow_path(int fd) {
    const char *dir = getenv("IRLAMP_SLOW_FSYNC_DIR");
    char link[64], path[4096];
    ssize_t n;
    if (dir == NULL || dir[0] == '\0') return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n < 0) return 0;
    path[n] = '\0';
    return strstr(path, dir) != NULL;
}

static void maybe_wait(int fd) {
    const char *ms = getenv("IRLAMP_SLOW_FSYNC_MS");
    if (ms != NULL && slow_path(fd)) {
        long delay_ms = atol(ms);
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    maybe_wait(fd);
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    maybe_wait(fd);
    return real(fd);
}
