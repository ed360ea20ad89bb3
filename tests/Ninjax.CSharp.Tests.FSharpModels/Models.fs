/// F# models for the C# tests: they check that modules cross the language boundary both ways
/// (a C# module inside an F# model, an F# model beside its C# twin) with the same paths.
namespace Ninjax.CSharp.Tests.FSharpModels

open System
open System.Runtime.InteropServices
open TorchSharp
open Ninjax

/// A module with a forward pass, implemented by C# and F# modules alike.
type ILayer =
    /// Applies the module.
    abstract Forward: torch.Tensor -> torch.Tensor

/// An F# model around a child module that its caller builds (a C# module in the tests): an F#
/// Dense before it, the child under <c>Path/inner</c>, and an F# Dense created inline after it.
type Wrapper<'Inner when 'Inner :> Module and 'Inner :> ILayer>
    (makeInner: Func<'Inner>, [<Optional; DefaultParameterValue("outer")>] name: string) as this =
    inherit Module(name)
    let pre = this.Sub("pre", fun () -> Dense 4)
    let inner = this.Sub("inner", makeInner)

    /// The child module.
    member _.Inner = inner

    /// pre, then the child, then post.
    member this.Forward(x: torch.Tensor) =
        let h = torch.nn.functional.relu (pre.Forward x)
        let h = inner.Forward h
        this.Sub("post", fun () -> Dense 2).Forward h

    /// Mean squared error against y.
    member this.Loss(x: torch.Tensor, y: torch.Tensor) = (this.Forward x - y).square().mean()

/// The seed README's Quickstart model training with Adam (as the C# Quickstart does), with .NET optional parameters
/// (rather than F#'s ?lr, which C# would see as FSharpOption) so C# can construct it.
type FsQuickstartModel
    (size: int, [<Optional; DefaultParameterValue(0.01)>] lr: float, [<Optional; DefaultParameterValue("model")>] name: string) as this =
    inherit Module(name)
    let h1 = this.Sub("h1", fun () -> Dense 128)
    let h2 = this.Sub("h2", fun () -> Dense 128)
    let opt = this.Sub("opt", fun () -> Optimizer(Optax.adam lr))

    /// The prediction for a batch.
    member this.Predict(x: torch.Tensor) =
        let x = torch.nn.functional.relu (h1.Forward x)
        let x = torch.nn.functional.relu (h2.Forward x)
        let x = this.Sub("h3", fun () -> Dense(size, useBias = false)).Forward x
        x + this.Get("bias", fun () -> torch.zeros(int64 size))

    /// Mean squared error.
    member this.Loss(x: torch.Tensor, y: torch.Tensor) = (this.Predict x - y).square().mean()

    /// One Adam step; returns the loss.
    member this.Train(x: torch.Tensor, y: torch.Tensor) =
        let targets = [ Target.Module h1; Target.Module h2; Target.Key(this.Path + "/h3"); Target.Key(this.Path + "/bias") ]
        opt.Minimize(this.Loss, targets, (x, y)).Loss

/// A small regression model that trains with an F# Optimizer module, the twin of the C# tests'
/// CsOptModel: the same layers and paths, so both can be compared entry by entry.
type FsOptModel(transform: GradientTransformation, [<Optional; DefaultParameterValue("model")>] name: string) as this =
    inherit Module(name)
    let h1 = this.Sub("h1", fun () -> Dense 16)
    let opt = this.Sub("opt", fun () -> Optimizer(transform))

    /// The prediction for a batch.
    member this.Predict(x: torch.Tensor) =
        let h = torch.nn.functional.relu (h1.Forward x)
        this.Sub("h2", fun () -> Dense 3).Forward h + this.Get("bias", fun () -> torch.zeros 3L)

    /// Mean squared error.
    member this.Loss(x: torch.Tensor, y: torch.Tensor) = (this.Predict x - y).square().mean()

    /// One optimizer step on every parameter; returns the loss and the learning rate as the C# metrics carry them.
    member this.Train(x: torch.Tensor, y: torch.Tensor) : struct (torch.Tensor * torch.Tensor * Nullable<float>) =
        let m = opt.Minimize(this.Loss, [ Target.Module h1; Target.Key(this.Path + "/h2"); Target.Key(this.Path + "/bias") ], (x, y))
        struct (m.Loss, m.GradNorm, Option.toNullable m.LearningRate)

/// Optimizer configurations written with F#'s records and functions, for comparison with the same
/// configurations made through the C# facade's factories.
module FsTransforms =

    /// Adam with torch's defaults.
    let adam () = Optax.adam 1e-2

    /// Adam with every option changed.
    let adamTuned () =
        Optax.adamWith { AdamOptions.Default with LearningRate = Schedule.constant 3e-3; Beta1 = 0.8; Beta2 = 0.99; Eps = 1e-6; WeightDecay = 0.1 }

    /// AdamW with PyTorch's default weight decay.
    let adamw () = Optax.adamw 1e-2

    /// AdamW with every option changed.
    let adamwTuned () =
        Optax.adamwWith { AdamOptions.Default with LearningRate = Schedule.constant 5e-3; Beta1 = 0.85; Beta2 = 0.98; Eps = 1e-7; WeightDecay = 0.2 }

    /// SGD with momentum, dampening and weight decay.
    let sgdTuned () =
        Optax.sgdWith { SgdOptions.Default with LearningRate = Schedule.constant 0.05; Momentum = 0.8; Dampening = 0.3; WeightDecay = 0.01 }

    /// SGD with Nesterov momentum.
    let sgdNesterov () =
        Optax.sgdWith { SgdOptions.Default with LearningRate = Schedule.constant 0.05; Momentum = 0.9; Nesterov = true }

    /// RMSprop with every option changed.
    let rmspropTuned () =
        Optax.rmspropWith
            { RmsPropOptions.Default with LearningRate = Schedule.constant 1e-3; Alpha = 0.9; Eps = 1e-6; WeightDecay = 0.01; Momentum = 0.9; Centered = true }

    /// Clipping chained before Adam on a warmup-cosine schedule.
    let clippedScheduledAdam () =
        Optax.chain [
            Optax.clipByGlobalNorm 0.5
            Optax.adamWith { AdamOptions.Default with LearningRate = Schedule.warmupCosineDecay 0.0 1e-2 2L 10L 1e-4 }
        ]

    /// SGD on a linear warmup into a cosine decay.
    let sgdWarmupIntoCosine () =
        Optax.sgdWith { SgdOptions.Default with LearningRate = Schedule.linearWarmupInto 0.0 2L (Schedule.cosineDecay 0.1 6L 0.1) }
