/// One training step of the 64-256-256-10 MLP with Adam: Ninjax against hand-written TorchSharp.
/// Both start from the same parameters and compute the same things (the loss, and the count of
/// correct predictions that the digits model reports), so the ratio is the framework's overhead:
/// purification, the state, the Adam step, and the gradient norm the optimizer reports. Ninjax
/// runs twice: donating its state as the digits trainer does (the optimizer then updates in
/// place, as torch.optim does), and plain (every step allocates new parameters and moments).
/// Both frameworks run on one intra-op thread, as the digits trainer does by default: on this
/// shared 2-core machine a second OpenMP thread makes no step faster and the timings vary far
/// more.
module Ninjax.Bench.TrainStep

open BenchmarkDotNet.Attributes
open TorchSharp
open Ninjax

/// The obvious loop: a purified step called on the state the previous call returned. Each step
/// reads the loss and the correct count, as the TorchSharp step does.
type private Loop(step: State -> torch.Tensor * torch.Tensor -> State * Digits.Models.StepMetrics, start: State) =
    let mutable state = start

    member _.Step(x: torch.Tensor, y: torch.Tensor) =
        let next, metrics = step state (x, y)
        state <- next
        metrics.Correct.item<int64> () |> ignore
        metrics.Loss.item<float32> ()

[<MemoryDiagnoser>]
type TrainStepBenchmarks() =
    let mutable x: torch.Tensor = null
    let mutable y: torch.Tensor = null
    // Plain TorchSharp: nn.Sequential and torch.optim.Adam, intermediates freed by a dispose scope.
    let mutable net: torch.nn.Module<torch.Tensor, torch.Tensor> = null
    let mutable adam: torch.optim.Optimizer = null
    // Ninjax: the digits MLP with its own Adam, purified once and called in the obvious loop.
    let mutable plain: Loop = Unchecked.defaultof<_>
    let mutable donated: Loop = Unchecked.defaultof<_>

    /// Images per step.
    [<Params(8, 128)>]
    member val BatchSize = 0 with get, set

    [<GlobalSetup>]
    member this.Setup() =
        torch.set_num_threads 1
        let train, _ = Digits.Data.loadBoth (Digits.Data.defaultFolder ())
        x <- train.Images.narrow(0L, 0L, int64 this.BatchSize)
        y <- train.Labels.narrow(0L, 0L, int64 this.BatchSize)
        torch.manual_seed 0L |> ignore
        net <-
            torch.nn.Sequential(
                torch.nn.Linear(64L, 256L), torch.nn.ReLU(),
                torch.nn.Linear(256L, 256L), torch.nn.ReLU(),
                torch.nn.Linear(256L, 10L))
        adam <- torch.optim.Adam(net.parameters (), 1e-3)
        let model = Digits.Models.Mlp([ 256; 256 ], 1e-3, "model")
        // Same starting point as the TorchSharp net (its weights are [out; in], ours [in; out]),
        // so both runs meet the same dead units and tiny moments along the way.
        let layers = net.parameters () |> Array.ofSeq
        let replace (key: string) (value: torch.Tensor) (s: State) =
            if not (State.containsKey key s) || s.[key].shape <> value.shape then
                failwithf "The bench expected the digits MLP to hold '%s' with shape %A; it holds: %O" key value.shape s
            State.add key value s
        let start =
            [ 0..2 ]
            |> List.fold
                (fun s i ->
                    s
                    |> replace (sprintf "model/dense%d/w" i) (layers.[2 * i].detach().t().contiguous().clone ())
                    |> replace (sprintf "model/dense%d/b" i) (layers.[2 * i + 1].detach().clone ()))
                (Nj.init 0L model.Train State.empty (x, y))
        plain <- Loop(Nj.purify model.Train, start)
        donated <- Loop(Nj.purifyWith (Options.donating Options.defaults) model.Train, State.map (fun _ t -> t.clone ()) start)

    [<Benchmark(Baseline = true, Description = "TorchSharp")>]
    member _.TorchSharpStep() =
        use scope = torch.NewDisposeScope()
        adam.zero_grad ()
        let logits = net.forward x
        let loss = torch.nn.functional.cross_entropy (logits, y)
        let correct = logits.argmax(1L).eq(y).sum()
        loss.backward ()
        adam.step () |> ignore
        correct.item<int64> () |> ignore
        loss.item<float32> ()

    [<Benchmark(Description = "Ninjax, donated")>]
    member _.NinjaxDonatedStep() = donated.Step(x, y)

    [<Benchmark(Description = "Ninjax")>]
    member _.NinjaxStep() = plain.Step(x, y)
