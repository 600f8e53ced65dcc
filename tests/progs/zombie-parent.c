/* Holds a zombie for as long as the test needs one:
 *   zombie-parent   forks a child that exits at once, waits until it has
 *                   exited without reaping it (WNOWAIT), prints its pid and
 *                   then sleeps until killed; the child stays a zombie. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	/* An ignored SIGCHLD (inherited across exec) would reap it in the kernel. */
	signal(SIGCHLD, SIG_DFL);
	pid_t child = fork();
	if (child < 0) {
		perror("fork");
		return 1;
	}
	if (child == 0)
		_exit(0);
	siginfo_t info;
	if (waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT) < 0) {
		perror("waitid");
		return 1;
	}
	printf("%d\n", (int)child);
	fflush(stdout);
	for (;;)
		pause();
}
