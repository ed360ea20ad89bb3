namespace Ninjax

open System
open System.Runtime.InteropServices
open TorchSharp

/// Initializers that draw from the purified call's random generator, so the seed decides them.
module Init =

    /// Glorot (Xavier) uniform initialisation for a [fanIn; fanOut] weight matrix.
    let glorotUniform (fanIn: int64) (fanOut: int64) : torch.Tensor =
        let bound = sqrt (6.0 / float (fanIn + fanOut))
        let u = torch.rand([| fanIn; fanOut |], generator = Nj.rng ())
        u.mul_(torch.tensor (2.0 * bound)).sub_(torch.tensor bound)

/// A dense layer <c>y = x W + b</c> written in Ninjax's own idiom: its weight and bias are state
/// entries created on first use, so the input size is taken from the first input.
[<AllowNullLiteral>]
type Linear(units: int, [<Optional; DefaultParameterValue(true)>] useBias: bool, [<Optional; DefaultParameterValue(null: string)>] name: string) =
    inherit Module(name)

    do
        if units <= 0 then
            raise (ArgumentOutOfRangeException("units", units, "A Linear layer needs at least one output unit."))

    /// The number of output units.
    member _.Units = units

    /// Applies the layer to the last axis of <paramref name="x"/>.
    member this.Forward(x: torch.Tensor) : torch.Tensor =
        if x.Dimensions = 0L then
            raise (ArgumentException(sprintf "%O expects an input with at least one axis; it got a scalar." this, "x"))
        let inputs = x.shape.[x.shape.Length - 1]
        let w = this.Get("w", fun () -> Init.glorotUniform inputs (int64 units))
        if w.shape.[0] <> inputs then
            raise (
                ArgumentException(
                    sprintf "%O was built for inputs of size %d on the last axis; it got shape %A." this w.shape.[0] x.shape,
                    "x"
                )
            )
        let y = x.matmul w
        if useBias then y.add (this.Get("b", fun () -> torch.zeros([| int64 units |], dtype = x.dtype))) else y
