/// The obvious training loop must hold memory flat. This test measures the whole process, so it
/// runs alone: the Test target starts it in its own process (NINJAX_MEMORY_TEST=1), and the
/// main run leaves it out.
module Ninjax.Tests.MemoryTests

open System
open System.Diagnostics
open Expecto
open TorchSharp
open Ninjax

let private enabled = Environment.GetEnvironmentVariable "NINJAX_MEMORY_TEST" = "1"

let private residentMB () =
    use p = Process.GetCurrentProcess()
    float p.WorkingSet64 / 1048576.0

[<Tests>]
let tests =
    testList "memory" [
        if enabled then
            testCase "10,000 steps of the MLP with no Dispose in user code hold resident memory flat" <| fun () ->
                let train, _ = Digits.Data.loadBoth (Digits.Data.defaultFolder ())
                let batches = Digits.Data.batches 0L 32 train |> Array.ofSeq
                let model = Digits.Models.Mlp([ 256; 256 ], 1e-3, "model")
                let mutable state = Nj.init 0L model.Train State.empty batches.[0]
                let step = Nj.purify model.Train
                let mutable atThousand = 0.0
                for i in 1..10000 do
                    // The obvious loop: the old state and the metrics are simply dropped.
                    let next, _ = step state batches.[i % batches.Length]
                    state <- next
                    if i = 1000 then atThousand <- residentMB ()
                let atEnd = residentMB ()
                let growth = (atEnd - atThousand) / atThousand
                printfn "resident memory: %.0f MB at step 1,000, %.0f MB at step 10,000 (%+.1f%%)" atThousand atEnd (100.0 * growth)
                Expect.isLessThan growth 0.10 (sprintf "grew from %.0f MB to %.0f MB" atThousand atEnd)
    ]
