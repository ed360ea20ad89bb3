/// One training step of the 64-256-256-10 MLP with Adam: Ninjax against hand-written TorchSharp.
module Ninjax.Bench.TrainStep

open BenchmarkDotNet.Attributes
open TorchSharp
open Ninjax

[<MemoryDiagnoser>]
type TrainStepBenchmarks() =
    let mutable x: torch.Tensor = null
    let mutable y: torch.Tensor = null
    // Plain TorchSharp: nn.Sequential and torch.optim.Adam, intermediates freed by a dispose scope.
    let mutable net: torch.nn.Module<torch.Tensor, torch.Tensor> = null
    let mutable adam: torch.optim.Optimizer = null
    // Ninjax: the digits MLP with its own Adam, purified once and called in the obvious loop.
    let mutable state = State.empty
    let mutable step: State -> torch.Tensor * torch.Tensor -> State * Digits.Models.StepMetrics = fun s _ -> s, Unchecked.defaultof<_>

    /// Images per step.
    [<Params(8, 128)>]
    member val BatchSize = 0 with get, set

    [<GlobalSetup>]
    member this.Setup() =
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
        state <- Nj.init 0L model.Train State.empty (x, y)
        step <- Nj.purify model.Train

    [<Benchmark(Baseline = true, Description = "TorchSharp")>]
    member _.TorchSharpStep() =
        use scope = torch.NewDisposeScope()
        adam.zero_grad ()
        let loss = torch.nn.functional.cross_entropy (net.forward x, y)
        loss.backward ()
        adam.step () |> ignore
        loss.item<float32> ()

    [<Benchmark(Description = "Ninjax")>]
    member _.NinjaxStep() =
        let next, metrics = step state (x, y)
        state <- next
        metrics.Loss.item<float32> ()
