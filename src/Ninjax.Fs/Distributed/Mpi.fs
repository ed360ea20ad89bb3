namespace Ninjax

open System
open System.Runtime.InteropServices
open System.Text

/// The handful of MPI calls data-parallel training needs, bound directly against Open MPI's
/// libmpi.so.40 (Open MPI 3.x to 5.x). MPI.NET 1.4.0 cannot be used on Linux: it loads MS-MPI's
/// msmpi.dll and hard-codes MS-MPI's integer handles (MPI_COMM_WORLD = 0x44000000), which
/// Open MPI, whose handles are pointers to predefined objects, rejects with a segmentation fault.
/// Open MPI's predefined handles are the addresses of its exported objects
/// (<c>ompi_mpi_comm_world</c>, <c>ompi_mpi_float</c>, <c>ompi_mpi_op_sum</c>, ...), read with
/// NativeLibrary.GetExport.
module internal MpiNative =

    [<Literal>]
    let Library = "libmpi.so.40"

    /// MPI_THREAD_SERIALIZED: any thread may call MPI, one at a time (Communicator holds a lock).
    [<Literal>]
    let ThreadSerialized = 2

    [<Literal>]
    let Success = 0

    [<DllImport(Library)>]
    extern int MPI_Initialized(int& flag)

    [<DllImport(Library)>]
    extern int MPI_Finalized(int& flag)

    [<DllImport(Library)>]
    extern int MPI_Init_thread(nativeint argc, nativeint argv, int required, int& provided)

    [<DllImport(Library)>]
    extern int MPI_Finalize()

    [<DllImport(Library)>]
    extern int MPI_Abort(nativeint comm, int errorcode)

    [<DllImport(Library)>]
    extern int MPI_Comm_rank(nativeint comm, int& rank)

    [<DllImport(Library)>]
    extern int MPI_Comm_size(nativeint comm, int& size)

    [<DllImport(Library)>]
    extern int MPI_Comm_set_errhandler(nativeint comm, nativeint errhandler)

    [<DllImport(Library)>]
    extern int MPI_Allreduce(nativeint sendbuf, nativeint recvbuf, int count, nativeint datatype, nativeint op, nativeint comm)

    [<DllImport(Library)>]
    extern int MPI_Bcast(nativeint buffer, int count, nativeint datatype, int root, nativeint comm)

    [<DllImport(Library)>]
    extern int MPI_Allgather(nativeint sendbuf, int sendcount, nativeint sendtype, nativeint recvbuf, int recvcount, nativeint recvtype, nativeint comm)

    [<DllImport(Library)>]
    extern int MPI_Barrier(nativeint comm)

    [<DllImport(Library)>]
    extern int MPI_Error_string(int errorcode, byte[] text, int& length)

    [<DllImport(Library)>]
    extern int MPI_Get_library_version(byte[] version, int& length)

    [<DllImport("libc", EntryPoint = "_exit")>]
    extern void private exitImmediately(int status)

    /// Ends the process at once with the status, running no .NET shutdown code.
    let exitNow (status: int) = exitImmediately status

    /// MPI_IN_PLACE in Open MPI.
    let InPlace = nativeint 1

    /// Open MPI's predefined objects; their addresses are the handles.
    type Handles =
        { CommWorld: nativeint
          ErrorsReturn: nativeint
          OpSum: nativeint
          Byte: nativeint
          Float: nativeint
          Double: nativeint
          Int32: nativeint
          Int64: nativeint }

    let private installHint =
        "Install Open MPI: on Debian or Ubuntu 'apt-get install openmpi-bin libopenmpi-dev', on Fedora 'dnf install openmpi' (then 'module load mpi'), on macOS 'brew install open-mpi'; libmpi.so.40 must be on the library path (ldconfig or LD_LIBRARY_PATH)."

    /// Loads libmpi and reads the predefined handles; a clear error when Open MPI is missing or
    /// the library found is another MPI (MPICH, Intel MPI: integer handles, other symbols).
    let load () : Handles =
        let library =
            match NativeLibrary.TryLoad Library with
            | true, h -> h
            | false, _ ->
                raise (DllNotFoundException(sprintf "Data-parallel training needs Open MPI's %s, which was not found. %s" Library installHint))
        let export (name: string) =
            match NativeLibrary.TryGetExport(library, name) with
            | true, address -> address
            | false, _ ->
                raise (
                    EntryPointNotFoundException(
                        sprintf "%s has no symbol '%s': it is not Open MPI (Ninjax binds Open MPI's predefined handles; MPICH, Intel MPI and MS-MPI are not supported). %s" Library name installHint
                    )
                )
        { CommWorld = export "ompi_mpi_comm_world"
          ErrorsReturn = export "ompi_mpi_errors_return"
          OpSum = export "ompi_mpi_op_sum"
          Byte = export "ompi_mpi_byte"
          Float = export "ompi_mpi_float"
          Double = export "ompi_mpi_double"
          Int32 = export "ompi_mpi_int32_t"
          Int64 = export "ompi_mpi_int64_t" }

    /// The text of an MPI error code.
    let errorText (code: int) : string =
        let buffer = Array.zeroCreate<byte> 512
        let mutable length = 0
        if MPI_Error_string(code, buffer, &length) = Success then Encoding.ASCII.GetString(buffer, 0, length)
        else sprintf "MPI error %d" code

    /// The MPI library's version string (first line), for messages.
    let libraryVersion () : string =
        let buffer = Array.zeroCreate<byte> 1024
        let mutable length = 0
        if MPI_Get_library_version(buffer, &length) = Success then
            Encoding.ASCII.GetString(buffer, 0, length).Split('\n').[0].Trim().TrimEnd(',')
        else "unknown MPI"
