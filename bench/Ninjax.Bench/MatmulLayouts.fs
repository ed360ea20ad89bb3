/// A diagnostic beside the benchmarks (`-- --layouts`): the three matrix products of a dense
/// layer's training step (forward with bias, input gradient, weight gradient) in both weight
/// layouts, Ninjax's [inputs; units] (Dense) and TorchSharp's [units; inputs] (Linear), for a range
/// of batch sizes and widths, with the cost of the transposed copy that lets Dense use the second
/// layout. Dense picks the layout by width from these figures (widths that are not a multiple of
/// 16 go through the copy); rerun it on another machine or BLAS to check that rule.
module Ninjax.Bench.MatmulLayouts

open System
open TorchSharp

/// The median time of one call of f, in microseconds.
let private time (f: unit -> torch.Tensor) : float =
    for _ in 1..100 do
        (f ()).Dispose()
    let runs =
        Array.init 5 (fun _ ->
            let clock = Diagnostics.Stopwatch.StartNew()
            for _ in 1..300 do
                (f ()).Dispose()
            clock.Elapsed.TotalMicroseconds / 300.0)
    (Array.sort runs).[2]

/// Prints one line per shape: both layouts' three products together, and the copy.
let run () =
    torch.set_num_threads 1
    for batch in [ 8L; 64L; 128L ] do
        for inputs in [ 64L; 256L ] do
            for units in [ 1L; 4L; 10L; 16L; 32L; 64L; 256L ] do
                let x = torch.randn(batch, inputs)
                let w = torch.randn(inputs, units)
                let linearWeight = w.t().contiguous ()
                let bias = torch.randn units
                let g = torch.randn(batch, units)
                let ninjax = time (fun () -> torch.addmm (bias, x, w, 1.0f, 1.0f)) + time (fun () -> g.matmul (w.t ())) + time (fun () -> x.t().matmul g)
                let linear =
                    time (fun () -> torch.nn.functional.linear (x, linearWeight, bias)) + time (fun () -> g.matmul linearWeight) + time (fun () -> g.t().matmul x)
                let copy = time (fun () -> w.t().contiguous ())
                printfn "batch %3d, %3d -> %3d: [inputs; units] %7.1f us   [units; inputs] %7.1f us   transposed copy %5.1f us" batch inputs units ninjax linear copy
