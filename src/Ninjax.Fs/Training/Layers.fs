namespace Ninjax

open System
open System.Runtime.InteropServices
open TorchSharp

/// Initializers that draw from the purified call's random generator, so the seed decides them.
module Init =

    /// Uniform initialisation in [-bound, bound) for any shape.
    let uniform (bound: float) (shape: int64[]) : torch.Tensor =
        let u = torch.rand(shape, generator = Nj.rng ())
        u.mul_(torch.tensor (2.0 * bound)).sub_(torch.tensor bound)

    /// Glorot (Xavier) uniform initialisation for a [fanIn; fanOut] weight matrix.
    let glorotUniform (fanIn: int64) (fanOut: int64) : torch.Tensor =
        uniform (sqrt (6.0 / float (fanIn + fanOut))) [| fanIn; fanOut |]

/// A dense layer <c>y = x W + b</c> written in Ninjax's own idiom: its weight and bias are state
/// entries created on first use, so the input size is taken from the first input.
[<AllowNullLiteral>]
type Dense(units: int, [<Optional; DefaultParameterValue(true)>] useBias: bool, [<Optional; DefaultParameterValue(null: string)>] name: string) =
    inherit Module(name)

    do
        if units <= 0 then
            raise (ArgumentOutOfRangeException("units", units, "A Dense layer needs at least one output unit."))

    /// The number of output units.
    member _.Units = units

    /// Applies the layer to the last axis of <paramref name="x"/>.
    member this.Forward(x: torch.Tensor) : torch.Tensor =
        if x.Dimensions = 0L then
            raise (ArgumentException(sprintf "%O expects an input with at least one axis; it got a scalar." this, "x"))
        let inputs = x.size(int x.Dimensions - 1)
        let w = this.Get("w", fun () -> Init.glorotUniform inputs (int64 units))
        if w.size 0 <> inputs then
            raise (
                ArgumentException(
                    sprintf "%O was built for inputs of size %d on the last axis; it got shape %s." this (w.size 0) (Text.shape x),
                    "x"
                )
            )
        if not useBias then x.matmul w
        else
            let b = this.Get("b", fun () -> torch.zeros([| int64 units |], dtype = x.dtype))
            // A batch of vectors takes the fused x W + b (one kernel forward and backward).
            if x.Dimensions = 2L then torch.addmm (b, x, w, 1.0f, 1.0f) else x.matmul(w).add b

/// A 2-D convolution over NCHW inputs written in Ninjax's idiom: its kernel <c>w</c> of shape
/// [channels; inputChannels; kernel; kernel] (TorchSharp's layout) and bias <c>b</c> are state
/// entries created on first use, so the input channels are taken from the first input. The kernel
/// starts uniform in ±1/sqrt(fan-in), as TorchSharp's Conv2d does; the bias starts at zero.
[<AllowNullLiteral>]
type Conv2D
    (
        channels: int,
        kernel: int,
        [<Optional; DefaultParameterValue(1)>] stride: int,
        [<Optional; DefaultParameterValue(0)>] padding: int,
        [<Optional; DefaultParameterValue(true)>] useBias: bool,
        [<Optional; DefaultParameterValue(null: string)>] name: string
    ) =
    inherit Module(name)

    do
        if channels <= 0 then
            raise (ArgumentOutOfRangeException("channels", channels, "A Conv2D layer needs at least one output channel."))
        if kernel <= 0 then
            raise (ArgumentOutOfRangeException("kernel", kernel, "A Conv2D kernel must be at least 1 wide."))
        if stride <= 0 then
            raise (ArgumentOutOfRangeException("stride", stride, "A Conv2D stride must be at least 1."))
        if padding < 0 then
            raise (ArgumentOutOfRangeException("padding", padding, "A Conv2D padding cannot be negative."))

    /// The number of output channels.
    member _.Channels = channels

    /// Applies the convolution to <paramref name="x"/> of shape [batch; channels; height; width].
    member this.Forward(x: torch.Tensor) : torch.Tensor =
        if x.Dimensions <> 4L then
            raise (ArgumentException(sprintf "%O expects input of shape [batch, channels, height, width]; it got shape %s." this (Text.shape x), "x"))
        let inputs = x.size 1
        let k = int64 kernel
        let w =
            this.Get("w", fun () -> Init.uniform (1.0 / sqrt (float (inputs * k * k))) [| int64 channels; inputs; k; k |])
        if w.size 1 <> inputs then
            raise (ArgumentException(sprintf "%O was built for %d input channels; it got shape %s." this (w.size 1) (Text.shape x), "x"))
        let size = padding * 2 + int (x.size 2), padding * 2 + int (x.size 3)
        if fst size < kernel || snd size < kernel then
            raise (ArgumentException(sprintf "%O has a %dx%d kernel, larger than its padded input %dx%d (input shape %s)." this kernel kernel (fst size) (snd size) (Text.shape x), "x"))
        let b = if useBias then this.Get("b", fun () -> torch.zeros([| int64 channels |], dtype = x.dtype)) else null
        torch.nn.functional.conv2d(x, w, b, strides = [| int64 stride; int64 stride |], padding = [| int64 padding; int64 padding |])

/// Layer normalisation over the last axis written in Ninjax's idiom: the scale <c>scale</c>
/// (ones) and offset <c>offset</c> (zeros) are state entries created on first use.
[<AllowNullLiteral>]
type LayerNormalization([<Optional; DefaultParameterValue(1e-5)>] eps: float, [<Optional; DefaultParameterValue(null: string)>] name: string) =
    inherit Module(name)

    do
        if not (eps > 0.0) then
            raise (ArgumentOutOfRangeException("eps", eps, "LayerNormalization's eps must be positive."))

    /// Normalises the last axis of <paramref name="x"/>.
    member this.Forward(x: torch.Tensor) : torch.Tensor =
        if x.Dimensions = 0L then
            raise (ArgumentException(sprintf "%O expects an input with at least one axis; it got a scalar." this, "x"))
        let features = x.size(int x.Dimensions - 1)
        let scale = this.Get("scale", fun () -> torch.ones([| features |], dtype = x.dtype))
        if scale.size 0 <> features then
            raise (ArgumentException(sprintf "%O was built for %d features on the last axis; it got shape %s." this (scale.size 0) (Text.shape x), "x"))
        let offset = this.Get("offset", fun () -> torch.zeros([| features |], dtype = x.dtype))
        torch.nn.functional.layer_norm(x, [| features |], scale, offset, eps)

/// Stateless operations that small networks put between layers. C# calls them by their
/// compiled names: <c>Ops.MaxPool2d(2, x)</c>, <c>Ops.Flatten(x)</c>.
module Ops =

    /// Max pooling over non-overlapping size x size windows of an NCHW tensor.
    [<CompiledName("MaxPool2d")>]
    let maxPool2d (size: int) (x: torch.Tensor) : torch.Tensor =
        if size <= 0 then raise (ArgumentOutOfRangeException("size", size, "The pooling window must be at least 1 wide."))
        if x.Dimensions <> 4L then
            raise (ArgumentException(sprintf "%s expects input of shape [batch, channels, height, width]; it got shape %s." (Text.code (Ambient.language ()) "Ops.maxPool2d" "Ops.MaxPool2d") (Text.shape x), "x"))
        torch.nn.functional.max_pool2d(x, [| int64 size; int64 size |])

    /// Flattens every axis after the first (the batch axis).
    [<CompiledName("Flatten")>]
    let flatten (x: torch.Tensor) : torch.Tensor =
        if x.Dimensions = 0L then raise (ArgumentException("flatten expects an input with a batch axis; it got a scalar.", "x"))
        x.flatten 1L
