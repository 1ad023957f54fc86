/* The MPI barrier program of the MPI benchmarks: every rank joins, passes one barrier, exits. */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) printf("barrier passed by %d ranks\n", size);
    MPI_Finalize();
    return 0;
}
