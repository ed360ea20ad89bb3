namespace Ninjax

open System.Collections.Generic

/// The process-wide settings the library makes for speed before its first purified call: glibc's
/// heap thresholds (NativeHeap) and, on AMD processors with AVX-512, MKL's AVX-512 kernels for
/// libtorch's matrix products (MklKernels). Each is made once per process and only where it
/// applies; the README's Performance section says what each does and how to turn it off.
/// C# calls them by their compiled names: <c>Tuning.Apply()</c>, <c>Tuning.Describe()</c>.
[<RequireQualifiedAccess>]
module Tuning =

    // Both settings behind one lazy value: every purified call asks for them.
    let private applied =
        lazy
            (NativeHeap.ensure ()
             MklKernels.ensure ())

    /// Makes the settings now, if they are not made yet. The library makes them at its first
    /// purified call (Nj.init, a purified function, Purify.run); call this at the start of a
    /// program that runs libtorch's matrix products before that, since MKL picks its kernels on
    /// its first call and keeps them.
    [<CompiledName("Apply")>]
    let apply () : unit = applied.Force()

    /// One line per setting: what it did, or why it left things as they were. Makes the settings
    /// first if they are not made yet.
    [<CompiledName("Describe")>]
    let describe () : IReadOnlyList<string> =
        let heap =
            match NativeHeap.status () with
            | HeapTuning.Tuned ->
                sprintf "glibc heap: trim threshold %d MB, mmap threshold %d MB (%s=off leaves them)" (NativeHeap.TrimThreshold / 1048576) (NativeHeap.MmapThreshold / 1048576) NativeHeap.SwitchVariable
            | HeapTuning.Untouched reason -> sprintf "glibc heap: left as it was (%s)" reason
        let mkl =
            match MklKernels.status () with
            | MklChoice.Avx512 -> sprintf "MKL kernels: AVX-512, chosen by instruction set as on Intel processors (%s=off leaves MKL's own choice)" MklKernels.SwitchVariable
            | MklChoice.Untouched reason -> sprintf "MKL kernels: left to MKL (%s)" reason
        [| heap; mkl |] :> IReadOnlyList<string>
