/* Catches the signals cgexec-clone3 forwards, even ones its caller ignored
 * (as a non-interactive shell does with INT and QUIT for background jobs):
 *   sig-catch READY_FILE   creates READY_FILE, waits, prints "got NAME" and
 *                          exits 9 at the first of INT TERM HUP QUIT USR1 USR2. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t caught;

static void on_signal(int sig)
{
	caught = sig;
}

int main(int argc, char **argv)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
	if (argc != 2) {
		fprintf(stderr, "usage: sig-catch READY_FILE\n");
		return 2;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t mask, old;
	sigemptyset(&mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaction(sigs[i], &sa, NULL);
		sigaddset(&mask, sigs[i]);
	}
	sigprocmask(SIG_BLOCK, &mask, &old);
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	close(fd);
	while (!caught)
		sigsuspend(&old);
	printf("got %s\n", sigabbrev_np(caught));
	return 9;
}
