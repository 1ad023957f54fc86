/* An MPI job for t2: every rank contributes rank + 1 to an MPI_Allreduce; rank 0 checks the
 * sum against n(n+1)/2. Each rank says which t2 worker runs it (T2_WORKER_ID, from the agent
 * that started its daemon). For tests: CRASH_RANK=r makes rank r crash (SIGSEGV) before the
 * allreduce; HOLD_SECONDS=s makes every rank wait s seconds first. */
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const char *worker = getenv("T2_WORKER_ID");
  printf("rank %d of %d on t2 worker %s (pid %d)\n", rank, size, worker ? worker : "?",
         (int)getpid());
  fflush(stdout);
  const char *hold = getenv("HOLD_SECONDS");
  if (hold) sleep((unsigned)atoi(hold));
  const char *crash = getenv("CRASH_RANK");
  if (crash && atoi(crash) == rank) raise(SIGSEGV);
  long mine = rank + 1, sum = 0;
  MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  long expected = (long)size * (size + 1) / 2;
  if (rank == 0) {
    printf("allreduce over %d ranks: sum = %ld (expected %ld) %s\n", size, sum, expected,
           sum == expected ? "OK" : "WRONG");
    fflush(stdout);
  }
  MPI_Finalize();
  return sum == expected ? 0 : 1;
}
