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
/// Linear before it, the child under <c>Path/inner</c>, and an F# Linear created inline after it.
type Wrapper<'Inner when 'Inner :> Module and 'Inner :> ILayer>
    (makeInner: Func<'Inner>, [<Optional; DefaultParameterValue("outer")>] name: string) as this =
    inherit Module(name)
    let pre = this.Sub("pre", fun () -> Linear 4)
    let inner = this.Sub("inner", makeInner)

    /// The child module.
    member _.Inner = inner

    /// pre, then the child, then post.
    member this.Forward(x: torch.Tensor) =
        let h = torch.nn.functional.relu (pre.Forward x)
        let h = inner.Forward h
        this.Sub("post", fun () -> Linear 2).Forward h

    /// Mean squared error against y.
    member this.Loss(x: torch.Tensor, y: torch.Tensor) = (this.Forward x - y).square().mean()

/// The seed README's Quickstart model as in examples/Quickstart.Fs, with .NET optional parameters
/// (rather than F#'s ?lr, which C# would see as FSharpOption) so C# can construct it.
type FsQuickstartModel
    (size: int, [<Optional; DefaultParameterValue(0.01)>] lr: float, [<Optional; DefaultParameterValue("model")>] name: string) as this =
    inherit Module(name)
    let h1 = this.Sub("h1", fun () -> Linear 128)
    let h2 = this.Sub("h2", fun () -> Linear 128)

    /// The prediction for a batch.
    member this.Predict(x: torch.Tensor) =
        let x = torch.nn.functional.relu (h1.Forward x)
        let x = torch.nn.functional.relu (h2.Forward x)
        let x = this.Sub("h3", fun () -> Linear(size, useBias = false)).Forward x
        x + this.Get("bias", fun () -> torch.zeros(int64 size))

    /// Mean squared error.
    member this.Loss(x: torch.Tensor, y: torch.Tensor) = (this.Predict x - y).square().mean()

    /// One step of gradient descent; returns the loss.
    member this.Train(x: torch.Tensor, y: torch.Tensor) =
        let targets = [ Target.Module h1; Target.Module h2; Target.Key(this.Path + "/h3"); Target.Key(this.Path + "/bias") ]
        let loss, ps, gs = Nj.grad this.Loss targets (x, y)
        this.PutM(State.map (fun k p -> p - lr * gs.[k]) ps)
        loss
