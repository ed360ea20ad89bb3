namespace Ninjax

open System
open System.Runtime.InteropServices
open TorchSharp

/// Initializers that draw from the purified call's random generator, so the seed decides them.
/// C# calls them by their compiled names: <c>Init.Uniform(0.1, [3, 4])</c>, <c>Init.GlorotUniform(3, 4)</c>.
module Init =

    /// Uniform initialisation in [-bound, bound) for any shape.
    [<CompiledName("Uniform")>]
    let uniform (bound: float) (shape: int64[]) : torch.Tensor =
        let u = torch.rand(shape, generator = Nj.rng ())
        u.mul_(torch.tensor (2.0 * bound)).sub_(torch.tensor bound)

    /// Glorot (Xavier) uniform initialisation for a [fanIn, fanOut] weight matrix.
    [<CompiledName("GlorotUniform")>]
    let glorotUniform (fanIn: int64) (fanOut: int64) : torch.Tensor =
        uniform (sqrt (6.0 / float (fanIn + fanOut))) [| fanIn; fanOut |]

/// Which layout Dense multiplies narrow outputs in. MKL's AVX2 "Zen" kernels (an AMD processor
/// whose MKL choice is left to MKL, see MklKernels) run products with an output width that is not
/// a multiple of 16 (a head of 10 classes) two to three times slower with the weight as [inputs;
/// units] than as [units; inputs] (forward, input gradient and weight gradient alike: 86 against 39
/// us for a batch of 128 from 256 inputs to 10 units on the benchmark machine), which pays for a
/// transposed copy of the weight (about 3 us, its gradient's as much). MKL's AVX-512 kernels show
/// no such gap (19.7 against 17.5 us), so there the copy would only cost. `--layouts` in the bench
/// measures both.
module internal NarrowProducts =

    /// The layout tests ask for on their own thread (null: the rule).
    let forced = new Threading.ThreadLocal<Nullable<bool>>()

    /// True when a narrow output's product goes through the weight's transposed copy.
    let transposed () : bool =
        let f = forced.Value
        if f.HasValue then f.Value else MklKernels.zenKernels ()

/// A dense layer <c>y = x W + b</c> written in Ninjax's own idiom: its weight and bias are state
/// entries created on first use, so the input size is taken from the first input.
[<AllowNullLiteral>]
type Dense(units: int, [<Optional; DefaultParameterValue(true)>] useBias: bool, [<Optional; DefaultParameterValue(null: string)>] name: string) =
    inherit Module(name)

    do
        if units <= 0 then
            raise (ArgumentOutOfRangeException("units", units, "A Dense layer needs at least one output unit."))

    // An output width that MKL's Zen kernels handle poorly in the [inputs; units] layout (NarrowProducts).
    let narrow = units > 1 && units % 16 <> 0

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
        let b = if useBias then this.Get("b", fun () -> torch.zeros([| int64 units |], dtype = x.dtype)) else null
        if narrow && NarrowProducts.transposed () then
            // The weight as TorchSharp's Linear keeps it, [units; inputs], copied each call.
            torch.nn.functional.linear (x, w.t().contiguous (), b)
        elif isNull b then x.matmul w
        // A batch of vectors takes the fused x W + b (one kernel forward and backward).
        elif x.Dimensions = 2L then torch.addmm (b, x, w, 1.0f, 1.0f)
        else x.matmul(w).add b

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

/// Batch normalisation written in Ninjax's idiom, computing as TorchSharp's BatchNorm1d/2d/3d
/// (the same kernel, momentum and eps): over inputs of shape [batch; channels; ...] it
/// normalises each channel (axis 1). The scale <c>scale</c> (ones) and offset <c>offset</c>
/// (zeros) are parameters; the running statistics <c>mean</c> (zeros) and <c>var</c> (ones)
/// are buffers (state that is not trained), all created on first use. Training or evaluation
/// is chosen per call: <c>Forward(x, training = true)</c> normalises with the batch's
/// statistics and writes the updated running statistics to the state
/// (<c>running = (1 - momentum) * running + momentum * batch</c>, the variance unbiased);
/// <c>Forward(x, training = false)</c> normalises with the running statistics and writes nothing.
[<AllowNullLiteral>]
type BatchNormalization
    (
        [<Optional; DefaultParameterValue(0.1)>] momentum: float,
        [<Optional; DefaultParameterValue(1e-5)>] eps: float,
        [<Optional; DefaultParameterValue(null: string)>] name: string
    ) as this =
    inherit Module(name)

    do
        if not (momentum >= 0.0 && momentum <= 1.0) then
            raise (ArgumentOutOfRangeException("momentum", momentum, "BatchNormalization's momentum must lie in [0, 1] (TorchSharp's default is 0.1)."))
        if not (eps > 0.0) then
            raise (ArgumentOutOfRangeException("eps", eps, "BatchNormalization's eps must be positive."))
        // Declared before any call, so they are buffers for a state loaded from a checkpoint too.
        this.DeclareBuffers("mean", "var")

    /// The weight of the batch's statistics in each update of the running statistics.
    member _.Momentum = momentum

    /// Added to the variance before its square root.
    member _.Eps = eps

    /// Normalises <paramref name="x"/> of shape [batch; channels; ...]: with the batch's
    /// statistics, updating the running ones, when <paramref name="training"/> is true; with
    /// the running statistics, changing nothing, when it is false.
    member this.Forward(x: torch.Tensor, training: bool) : torch.Tensor =
        if isNull (box x) then raise (ArgumentNullException("x"))
        if x.Dimensions < 2L then
            raise (ArgumentException(sprintf "%O expects input of shape [batch, channels, ...]; it got shape %s." this (Text.shape x), "x"))
        let channels = x.size 1
        let scale = this.Get("scale", fun () -> torch.ones([| channels |], dtype = x.dtype, device = x.device))
        if scale.size 0 <> channels then
            raise (ArgumentException(sprintf "%O was built for %d channels (axis 1); it got shape %s." this (scale.size 0) (Text.shape x), "x"))
        let offset = this.Get("offset", fun () -> torch.zeros([| channels |], dtype = x.dtype, device = x.device))
        let mean = this.Buffer("mean", fun () -> torch.zeros([| channels |], dtype = x.dtype, device = x.device))
        let var = this.Buffer("var", fun () -> torch.ones([| channels |], dtype = x.dtype, device = x.device))
        if training then
            if x.NumberOfElements / channels <= 1L then
                raise (
                    ArgumentException(
                        sprintf "%O in training needs more than one value per channel to compute batch statistics; it got shape %s. Use a larger batch, or %s." this (Text.shape x) (Text.code (Ambient.language ()) "training = false" "training: false"),
                        "x"
                    )
                )
            // The kernel updates the running statistics in place: give it copies (the state is
            // immutable) and write them back. Detached first only when a gradient targets them
            // (a key target over the whole module), as libtorch refuses in-place updates of a leaf.
            let copy (t: torch.Tensor) = if t.requires_grad then t.detach().clone() else t.clone()
            let mean = copy mean
            let var = copy var
            let y = torch.nn.functional.batch_norm(x, mean, var, scale, offset, true, momentum, eps)
            this.Put("mean", mean) |> ignore
            this.Put("var", var) |> ignore
            y
        else torch.nn.functional.batch_norm(x, mean, var, scale, offset, false, momentum, eps)

/// An embedding table written in Ninjax's idiom, computing as TorchSharp's Embedding: it maps
/// integer indices in [0, count) to rows of the parameter <c>embedding</c> of shape
/// [count; features], which starts normal(0, 1) from the call's seed. With
/// <c>paddingIndex</c>, that row starts at zero and gets no gradient (negative indices count
/// from the end, as in TorchSharp). TorchSharp's max_norm and scale_grad_by_freq are not offered.
[<AllowNullLiteral>]
type Embed
    (
        count: int,
        features: int,
        [<Optional>] paddingIndex: Nullable<int>,
        [<Optional; DefaultParameterValue(null: string)>] name: string
    ) =
    inherit Module(name)

    do
        if count <= 0 then
            raise (ArgumentOutOfRangeException("count", count, "An Embed table needs at least one row (count)."))
        if features <= 0 then
            raise (ArgumentOutOfRangeException("features", features, "An Embed table needs at least one feature per row."))
        if paddingIndex.HasValue && (paddingIndex.Value < -count || paddingIndex.Value >= count) then
            raise (ArgumentOutOfRangeException("paddingIndex", paddingIndex.Value, sprintf "The padding index must lie in [-%d, %d) for a table of %d rows." count count count))

    let padding = if paddingIndex.HasValue then Some(int64 (if paddingIndex.Value < 0 then paddingIndex.Value + count else paddingIndex.Value)) else None

    /// The number of rows.
    member _.Count = count

    /// The size of each row.
    member _.Features = features

    /// The row that gets no gradient (made non-negative), or null.
    member _.PaddingIndex: Nullable<int> = match padding with Some p -> Nullable(int p) | None -> Nullable()

    /// The rows for <paramref name="indices"/> (an integer tensor of any shape): shape
    /// <c>indices.shape + [features]</c>.
    member this.Forward(indices: torch.Tensor) : torch.Tensor =
        if isNull (box indices) then raise (ArgumentNullException("indices"))
        if indices.dtype <> torch.int64 && indices.dtype <> torch.int32 then
            raise (ArgumentException(sprintf "%O expects indices of dtype Int64 or Int32; it got %O of shape %s." this indices.dtype (Text.shape indices), "indices"))
        let table =
            this.Get(
                "embedding",
                fun () ->
                    let t = torch.randn([| int64 count; int64 features |], generator = Nj.rng ())
                    match padding with
                    | Some p -> t.index_fill_(0L, torch.tensor [| p |], 0.0)
                    | None -> t
            )
        if table.size 0 <> int64 count || table.size 1 <> int64 features then
            raise (ArgumentException(sprintf "%O holds a table of shape %s; it was made for [%d, %d]." this (Text.shape table) count features))
        let rows =
            try
                table.index_select(0L, indices.reshape(-1L))
            with :? ExternalException ->
                let low, high = indices.min().ToInt64(), indices.max().ToInt64()
                raise (ArgumentException(sprintf "%O has %d rows; it got indices from %d to %d, outside [0, %d)." this count low high count, "indices"))
        let shape = Array.append indices.shape [| int64 features |]
        let out = rows.reshape shape
        match padding with
        | None -> out
        // The padding row reads as it is but passes no gradient back, as in TorchSharp.
        | Some p ->
            use p = Scalar.op_Implicit p
            torch.where(indices.eq(p).unsqueeze(-1L), out.detach(), out)

/// Stateless operations that small networks put between layers. C# calls them by their
/// compiled names: <c>Ops.Dropout(0.3, training, x)</c>, <c>Ops.MaxPool2d(2, x)</c>, <c>Ops.Flatten(x)</c>.
module Ops =

    /// Dropout, as TorchSharp's: in training, zeroes each element with probability
    /// <paramref name="rate"/> and scales the rest by 1 / (1 - rate), drawing the mask from the
    /// purified call's randomness (Nj.rng), so the call's seed decides it; otherwise (or at rate
    /// 0) returns <paramref name="x"/> itself. A function rather than a module: it holds no state.
    [<CompiledName("Dropout")>]
    let dropout (rate: float) (training: bool) (x: torch.Tensor) : torch.Tensor =
        if not (rate >= 0.0 && rate <= 1.0) then
            raise (ArgumentOutOfRangeException("rate", rate, "The dropout rate must lie in [0, 1]."))
        if isNull (box x) then raise (ArgumentNullException("x"))
        if not training || rate = 0.0 || x.NumberOfElements = 0L then x
        elif rate = 1.0 then x.mul (torch.zeros([||], dtype = x.dtype, device = x.device))
        else
            // ATen's own order on the CPU: a Bernoulli(1 - rate) mask, divided by 1 - rate, times x.
            let noise = torch.empty_like(x).bernoulli_(1.0 - rate, generator = Nj.rng ())
            use keep = Scalar.op_Implicit (1.0 - rate)
            noise.div_(keep) |> ignore
            x.mul noise

    /// libtorch's CPU max pooling over an NCHW-contiguous tensor runs a scalar loop per output
    /// (the digits CNN's 2 x 2 pooling of [32; 64; 8; 8]: 0.8 ms, a fifth of its training step), while
    /// its loop over a channels-last tensor is vectorised over the channels (35 us). So this pools a
    /// channels-last copy of <paramref name="x"/> for the indices of the maxima (within each plane, as
    /// libtorch's loops number them, which scan each window in the same order) and gathers the
    /// outputs from <paramref name="x"/> at them: the values are max_pool2d's, and the gradient,
    /// gather's scatter into x's layout, reaches the same elements. 0.28 ms forward and backward in
    /// all (0.2-0.36 of max_pool2d's time for 8 to 128 channels of 8x8 to 32x32 planes; about the same
    /// for 1.6 million elements). x is a contiguous floating-point CPU tensor of four axes.
    let private poolByIndices (window: int64[]) (x: torch.Tensor) : torch.Tensor =
        let batch, channels, height, width = x.size 0, x.size 1, x.size 2, x.size 3
        let indices =
            use _ = torch.no_grad ()
            use pixelsFirst = x.permute(0L, 2L, 3L, 1L)
            use copy = pixelsFirst.contiguous ()
            use channelsLast = copy.permute(0L, 3L, 1L, 2L)
            let struct (values, indices) = torch.nn.functional.max_pool2d_with_indices(channelsLast, window)
            values.Dispose()
            indices
        let outHeight, outWidth = indices.size 2, indices.size 3
        use flatIndices = indices.view(batch, channels, outHeight * outWidth)
        use planes = x.view(batch, channels, height * width)
        use pooled = planes.gather(2L, flatIndices)
        indices.Dispose()
        pooled.view(batch, channels, outHeight, outWidth)

    /// Max pooling over non-overlapping size x size windows of an NCHW tensor, as TorchSharp's
    /// max_pool2d computes it (the same values; the gradient goes to the same element of each
    /// window: the first maximum, or the last NaN), faster on the CPU (see poolByIndices).
    [<CompiledName("MaxPool2d")>]
    let maxPool2d (size: int) (x: torch.Tensor) : torch.Tensor =
        // Named only on an error: outside a purified call the language comes from the stack.
        let name () = Text.code (Ambient.language ()) "Ops.maxPool2d" "Ops.MaxPool2d"
        if size <= 0 then raise (ArgumentOutOfRangeException("size", size, "The pooling window must be at least 1 wide."))
        if isNull (box x) then raise (ArgumentNullException("x"))
        if x.Dimensions <> 4L then
            raise (ArgumentException(sprintf "%s expects input of shape [batch, channels, height, width]; it got shape %s." (name ()) (Text.shape x), "x"))
        if x.size 2 < int64 size || x.size 3 < int64 size then
            raise (ArgumentException(sprintf "%s(%d) needs an input at least %d x %d in height and width; it got shape %s. Use a smaller window or a larger input." (name ()) size size size (Text.shape x), "x"))
        let window = [| int64 size; int64 size |]
        // The channels-last loop is vectorised over the channels: with fewer than 8 (an image's
        // 1 or 3) the copy costs more than it saves (1.1-1.6x max_pool2d's time).
        if x.device_type = DeviceType.CPU && x.size 1 >= 8L && x.is_floating_point () && x.NumberOfElements > 0L && x.is_contiguous () then
            poolByIndices window x
        else torch.nn.functional.max_pool2d(x, window)

    /// Flattens every axis after the first (the batch axis).
    [<CompiledName("Flatten")>]
    let flatten (x: torch.Tensor) : torch.Tensor =
        if x.Dimensions = 0L then raise (ArgumentException("flatten expects an input with a batch axis; it got a scalar.", "x"))
        x.flatten 1L
