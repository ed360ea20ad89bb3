/// The cost of one purified call as the state grows, when the function touches 10 entries.
module Ninjax.Bench.PureCall

open BenchmarkDotNet.Attributes
open TorchSharp
open Ninjax

/// Reads ten entries and writes ten entries of a module; everything else in the state is untouched.
type Toucher(name: string) =
    inherit Module(name)
    member this.Step() =
        for i in 0..9 do
            let key = sprintf "e%d" i
            this.Put(key, this.Get key) |> ignore

[<MemoryDiagnoser>]
type PureCallBenchmarks() =
    let toucher = Toucher "touch"
    let step = Nj.purify toucher.Step
    let mutable state = State.empty

    /// The number of entries in the state.
    [<Params(10, 1000, 100000)>]
    member val Entries = 0 with get, set

    [<GlobalSetup>]
    member this.Setup() =
        let value = torch.zeros 4L
        let touched = [ for i in 0..9 -> sprintf "touch/e%d" i, value ]
        let others = [ for i in 0 .. this.Entries - 11 -> sprintf "other/m%d/w%d" (i % 97) i, value ]
        state <- State.ofSeq (touched @ others)

    [<Benchmark>]
    member _.PureCall() = fst (step state ())
