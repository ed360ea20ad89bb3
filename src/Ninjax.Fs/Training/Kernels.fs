namespace Ninjax

open System
open System.Numerics
open System.Runtime.InteropServices
open System.Runtime.Intrinsics
open TorchSharp

/// The constants of one Adam or AdamW step, in the parameters' element type.
[<Struct; NoEquality; NoComparison>]
type internal AdamStep<'T> =
    {
        /// Multiplies every gradient first (gradient clipping's factor; 1 otherwise).
        GradScale: 'T
        /// Adam's L2 penalty: adds <c>L2 * param</c> to the gradient when HasL2.
        L2: 'T
        HasL2: bool
        Beta1: 'T
        /// 1 - Beta1.
        Keep1: 'T
        Beta2: 'T
        /// 1 - Beta2.
        Keep2: 'T
        /// The second moment is clamped to this before the square root (a normal number, so
        /// the square root never takes the slow path of subnormal inputs; 0 for no clamp).
        Floor: 'T
        /// eps times the square root of the second moment's bias correction.
        Eps: 'T
        /// AdamW's decoupled decay factor <c>1 - lr * weightDecay</c> (1 for Adam).
        Decay: 'T
        /// <c>-lr * sqrt(1 - b2^t) / (1 - b1^t)</c>.
        StepSize: 'T
        /// New first moments, second moments and parameters smaller in magnitude than these are
        /// stored as zero (see flush).
        FlushM: 'T
        FlushV: 'T
        FlushP: 'T
    }

/// The constants of one SGD step, in the parameters' element type.
[<Struct; NoEquality; NoComparison>]
type internal SgdStep<'T> =
    {
        GradScale: 'T
        /// The L2 penalty (weight decay) when HasL2.
        L2: 'T
        HasL2: bool
        /// Keeps a momentum buffer.
        HasMomentum: bool
        /// The momentum buffer is the gradient itself (the first step).
        First: bool
        Momentum: 'T
        /// 1 - dampening.
        Keep: 'T
        Nesterov: bool
        /// -lr.
        NegLr: 'T
        /// New momentum buffers smaller in magnitude than this are stored as zero (see flush).
        FlushBuf: 'T
    }

/// The constants of one RMSprop step, in the parameters' element type.
[<Struct; NoEquality; NoComparison>]
type internal RmsStep<'T> =
    {
        GradScale: 'T
        L2: 'T
        HasL2: bool
        Alpha: 'T
        /// 1 - Alpha.
        Keep: 'T
        Centered: bool
        Floor: 'T
        Eps: 'T
        HasMomentum: bool
        /// The momentum buffer is the normalised gradient itself (the first step).
        First: bool
        Momentum: 'T
        /// -lr.
        NegLr: 'T
        /// New averages and momentum buffers smaller in magnitude than these are stored as zero
        /// (see flush).
        FlushNu: 'T
        FlushMu: 'T
        FlushBuf: 'T
    }

/// The optimizers' arithmetic as single loops over the memory of CPU tensors: each reads a
/// parameter, its gradient and its moments once and writes the new values once, with
/// System.Numerics vectors (as wide as the machine's SIMD registers) and a scalar tail that
/// computes exactly as a vector lane does. Every element goes through the same IEEE operations
/// in torch.optim's order (multiplications and additions kept apart, never fused), so the
/// results agree with torch.optim to rounding. Outputs may be the inputs (an update in place)
/// or fresh memory; each element is read before it is written. On the way each loop sums the
/// squares of the gradient's elements as given (see gradSquares), so that the optimizer's
/// gradient norm takes no pass of its own.
module internal Kernels =

    /// isDirect for a tensor whose dtype and element count the caller has checked: on the CPU and
    /// contiguous (two native calls instead of five).
    let isDirectOfType (t: torch.Tensor) : bool = t.device_type = DeviceType.CPU && t.is_contiguous ()

    /// The elements of a tensor the loops may read and write directly: a contiguous CPU tensor
    /// of <typeparamref name="T"/> whose bytes a span can hold.
    let isDirect (dtype: torch.ScalarType) (t: torch.Tensor) : bool =
        t.dtype = dtype && t.NumberOfElements * t.ElementSize <= int64 Int32.MaxValue && isDirectOfType t

    /// The elements of a tensor that isDirect accepted, in place.
    let inline span<'T when 'T: struct and 'T: (new: unit -> 'T) and 'T :> ValueType> (t: torch.Tensor) : Span<'T> =
        MemoryMarshal.Cast<byte, 'T>(t.bytes)

    /// A tensor's elements as span, or an empty span for null (state an option does not keep).
    let inline spanOrEmpty<'T when 'T: struct and 'T: (new: unit -> 'T) and 'T :> ValueType> (t: torch.Tensor) : Span<'T> =
        if isNull t then Span<'T>.Empty else MemoryMarshal.Cast<byte, 'T>(t.bytes)

    let inline private vectors<'T when 'T: struct and 'T: (new: unit -> 'T) and 'T :> ValueType> (s: Span<'T>) : Span<Vector<'T>> =
        MemoryMarshal.Cast<'T, Vector<'T>>(s)

    /// The sum of squares of a float32 tensor's elements, accumulated in float64.
    let sumOfSquares32 (g: Span<float32>) : float =
        let gv = vectors g
        // Two accumulators, so that each addition waits for the one before it half as often.
        let mutable low = Vector<float>.Zero
        let mutable high = Vector<float>.Zero
        for i in 0 .. gv.Length - 1 do
            let mutable lo = Vector<float>.Zero
            let mutable hi = Vector<float>.Zero
            Vector.Widen(gv.[i], &lo, &hi)
            low <- Vector.FusedMultiplyAdd(lo, lo, low)
            high <- Vector.FusedMultiplyAdd(hi, hi, high)
        let mutable total = Vector.Sum(low + high)
        for i in gv.Length * Vector<float32>.Count .. g.Length - 1 do
            let x = float g.[i]
            total <- total + x * x
        total

    /// The sum of squares of a float64 tensor's elements.
    let sumOfSquares64 (g: Span<float>) : float =
        let gv = vectors g
        let mutable acc = Vector<float>.Zero
        for i in 0 .. gv.Length - 1 do
            acc <- acc + gv.[i] * gv.[i]
        let mutable total = Vector.Sum acc
        for i in gv.Length * Vector<float>.Count .. g.Length - 1 do
            total <- total + g.[i] * g.[i]
        total

    /// The squares of a float32 vector's lanes in float64 (widened as sumOfSquares32 widens them),
    /// the low half's and the high half's added pairwise: one float64 vector for a fused loop to
    /// accumulate.
    let inline private squares32 (g: Vector<float32>) : Vector<float> =
        let mutable lo = Vector<float>.Zero
        let mutable hi = Vector<float>.Zero
        Vector.Widen(g, &lo, &hi)
        Vector.FusedMultiplyAdd(lo, lo, hi * hi)

    /// The squares of a float64 vector's elements.
    let inline private squares64 (g: Vector<float>) : Vector<float> = g * g

    // gradSquares: every loop below sums the squares of the gradient it reads, before GradScale
    // and the L2 term, in float64: each vector's squares (squares32, squares64) go to the first of
    // two accumulators, which then trade places, so that the vectors go to each in turn and each
    // addition waits for the one before it half as often; the scalar tail adds its elements one
    // by one. The sum is sumOfSquares' up to rounding: the additions go in another order, and
    // sumOfSquares keeps its own, since gradient clipping's factor comes from it and must not move.
    // The trade is written out in each loop: a helper taking the accumulators by reference made
    // the JIT keep them in memory (3x slower). Summing changes no bit of any parameter or moment.

    /// Zero where |x| is below the threshold. The optimizers' moments of dead units (whose
    /// gradients are zero) decay geometrically into subnormal numbers, and each vector operation
    /// that reads or makes one takes a microcode assist: a fused Adam step over the digits MLP's
    /// moments after 3,000 steps ran 7x slower (624 us against 91 us). So each loop stores a
    /// value that its next decay would make subnormal (below the smallest normal number divided by
    /// the decay factor) as zero, as a processor in flush-to-zero mode would. Its effect on a
    /// parameter is below 1e-30 of the learning rate.
    let inline private flushV (x: Vector< ^T>) (threshold: Vector< ^T>) : Vector< ^T> =
        Vector.ConditionalSelect(Vector.LessThan(Vector.Abs x, threshold), Vector< ^T>.Zero, x)

    /// flushV for one element.
    let inline private flush (x: ^T) (threshold: ^T) : ^T = if abs x < threshold then LanguagePrimitives.GenericZero else x

    /// A span's whole 512-bit vectors.
    let inline private wideVectors<'T when 'T: struct and 'T: (new: unit -> 'T) and 'T :> ValueType> (s: Span<'T>) : Span<Vector512<'T>> =
        MemoryMarshal.Cast<'T, Vector512<'T>>(s)

    /// Zero where |x| is below the threshold, for 512-bit vectors (see flushV).
    let inline private flushW (x: Vector512< ^T>) (threshold: Vector512< ^T>) : Vector512< ^T> =
        Vector512.ConditionalSelect(Vector512.LessThan(Vector512.Abs x, threshold), Vector512< ^T>.Zero, x)

    /// adam's vector loop, over vectors of either width (Vector, Vector512): the operations that
    /// differ between them come as functions, so that every lane computes the same thing at both
    /// widths. Returns the sum of the two gradSquares accumulators.
    let inline private adamLanes
        ([<InlineIfLambda>] broadcast: ^T -> ^V,
         [<InlineIfLambda>] fmaV: ^V -> ^V -> ^V -> ^V,
         [<InlineIfLambda>] squares: ^V -> ^W,
         [<InlineIfLambda>] flushV: ^V -> ^V -> ^V,
         [<InlineIfLambda>] sqrtOfMax: ^V -> ^V -> ^V,
         zero: ^W, c: AdamStep< ^T>,
         pv: Span< ^V>, gv: Span< ^V>, mv: Span< ^V>, vv: Span< ^V>, pov: Span< ^V>, mov: Span< ^V>, vov: Span< ^V>)
        : ^W =
        let scale, l2 = broadcast c.GradScale, broadcast c.L2
        let b1, k1, b2, k2 = broadcast c.Beta1, broadcast c.Keep1, broadcast c.Beta2, broadcast c.Keep2
        let floor, eps, decay, stepSize = broadcast c.Floor, broadcast c.Eps, broadcast c.Decay, broadcast c.StepSize
        let flushM, flushVv, flushP = broadcast c.FlushM, broadcast c.FlushV, broadcast c.FlushP
        let mutable first = zero
        let mutable second = zero
        for i in 0 .. pv.Length - 1 do
            let param = pv.[i]
            let raw = gv.[i]
            let sum = first + squares raw // gradSquares
            first <- second
            second <- sum
            let grad = raw * scale
            let grad = if c.HasL2 then fmaV param l2 grad else grad
            let m1 = flushV (fmaV grad k1 (mv.[i] * b1)) flushM
            let v1 = flushV (fmaV (k2 * grad) grad (vv.[i] * b2)) flushVv
            let denom = sqrtOfMax v1 floor + eps
            mov.[i] <- m1
            vov.[i] <- v1
            pov.[i] <- flushV (param * decay + stepSize * m1 / denom) flushP
        first + second

    /// One Adam or AdamW step: <c>m = b1 m + (1 - b1) g</c>, <c>v = b2 v + (1 - b2) g g</c>,
    /// <c>p = p decay + stepSize m / (sqrt(max(v, floor)) + eps)</c>, rounded as libtorch's CPU
    /// kernels round torch.optim's ops (add with alpha and addcmul fused multiply-adds). Returns
    /// the sum of squares of the gradient as given (gradSquares).
    let inline private adam
        ([<InlineIfLambda>] fmaV: Vector< ^T> -> Vector< ^T> -> Vector< ^T> -> Vector< ^T>,
         [<InlineIfLambda>] fma: ^T -> ^T -> ^T -> ^T,
         [<InlineIfLambda>] squares: Vector< ^T> -> Vector<float>,
         c: AdamStep< ^T>, p: Span< ^T>, g: Span< ^T>, m: Span< ^T>, v: Span< ^T>, pOut: Span< ^T>, mOut: Span< ^T>, vOut: Span< ^T>)
        : float =
        let vectorSum =
            adamLanes (
                (fun (x: ^T) -> Vector< ^T>(x)), fmaV, squares, flushV, (fun v floor -> Vector.SquareRoot(Vector.Max(v, floor))), Vector<float>.Zero, c,
                vectors p, vectors g, vectors m, vectors v, vectors pOut, vectors mOut, vectors vOut
            )
        let mutable total = Vector.Sum vectorSum
        for i in (p.Length / Vector< ^T>.Count) * Vector< ^T>.Count .. p.Length - 1 do
            let param = p.[i]
            let raw = g.[i]
            let x = float raw
            total <- total + x * x
            let grad = raw * c.GradScale
            let grad = if c.HasL2 then fma param c.L2 grad else grad
            let m1 = flush (fma grad c.Keep1 (m.[i] * c.Beta1)) c.FlushM
            let v1 = flush (fma (c.Keep2 * grad) grad (v.[i] * c.Beta2)) c.FlushV
            let denom = sqrt (if v1 < c.Floor then c.Floor else v1) + c.Eps
            mOut.[i] <- m1
            vOut.[i] <- v1
            pOut.[i] <- flush (param * c.Decay + c.StepSize * m1 / denom) c.FlushP
        total

    /// adam's vector loop over 512-bit vectors, for the elements that fill whole ones; returns
    /// how many it updated and their gradSquares sum. A processor with 512-bit arithmetic (AVX-512)
    /// runs it faster than the loop over Vector (256 bits wide there): Zen 5 takes the square
    /// roots and divisions of the wider vectors at a higher rate (the digits MLP's 85,000
    /// parameters: 34 against 53 us).
    let inline private adamWide
        ([<InlineIfLambda>] fmaV: Vector512< ^T> -> Vector512< ^T> -> Vector512< ^T> -> Vector512< ^T>,
         [<InlineIfLambda>] squares: Vector512< ^T> -> Vector512<float>,
         c: AdamStep< ^T>, p: Span< ^T>, g: Span< ^T>, m: Span< ^T>, v: Span< ^T>, pOut: Span< ^T>, mOut: Span< ^T>, vOut: Span< ^T>)
        : struct (int * float) =
        let sum =
            adamLanes (
                (fun (x: ^T) -> Vector512.Create< ^T>(x)), fmaV, squares, flushW, (fun v floor -> Vector512.Sqrt(Vector512.Max(v, floor))), Vector512<float>.Zero, c,
                wideVectors p, wideVectors g, wideVectors m, wideVectors v, wideVectors pOut, wideVectors mOut, wideVectors vOut
            )
        struct ((p.Length / Vector512< ^T>.Count) * Vector512< ^T>.Count, Vector512.Sum sum)

    /// One SGD step: <c>buf = momentum buf + (1 - dampening) g</c> (<c>buf = g</c> at the first
    /// step), <c>d = g + momentum buf</c> with Nesterov or <c>buf</c>, <c>p = p - lr d</c>.
    /// Without momentum <paramref name="buf"/> and <paramref name="bufOut"/> are not touched.
    /// Returns the gradient's sum of squares (gradSquares).
    let inline private sgd
        ([<InlineIfLambda>] fmaV: Vector< ^T> -> Vector< ^T> -> Vector< ^T> -> Vector< ^T>,
         [<InlineIfLambda>] fma: ^T -> ^T -> ^T -> ^T,
         [<InlineIfLambda>] squares: Vector< ^T> -> Vector<float>,
         c: SgdStep< ^T>, p: Span< ^T>, g: Span< ^T>, buf: Span< ^T>, pOut: Span< ^T>, bufOut: Span< ^T>)
        : float =
        let pv = vectors p
        let gv = vectors g
        let pov = vectors pOut
        let bv = vectors buf
        let bov = vectors bufOut
        let scale, l2, momentum, keep, negLr = Vector< ^T>(c.GradScale), Vector< ^T>(c.L2), Vector< ^T>(c.Momentum), Vector< ^T>(c.Keep), Vector< ^T>(c.NegLr)
        let flushBuf = Vector< ^T>(c.FlushBuf)
        let mutable first = Vector<float>.Zero
        let mutable second = Vector<float>.Zero
        for i in 0 .. pv.Length - 1 do
            let param = pv.[i]
            let raw = gv.[i]
            let sum = first + squares raw // gradSquares
            first <- second
            second <- sum
            let grad = raw * scale
            let grad = if c.HasL2 then fmaV param l2 grad else grad
            let d =
                if not c.HasMomentum then grad
                else
                    let b = flushV (if c.First then grad else fmaV grad keep (bv.[i] * momentum)) flushBuf
                    bov.[i] <- b
                    if c.Nesterov then fmaV b momentum grad else b
            pov.[i] <- fmaV d negLr param
        let mutable total = Vector.Sum(first + second)
        for i in pv.Length * Vector< ^T>.Count .. p.Length - 1 do
            let param = p.[i]
            let raw = g.[i]
            let x = float raw
            total <- total + x * x
            let grad = raw * c.GradScale
            let grad = if c.HasL2 then fma param c.L2 grad else grad
            let d =
                if not c.HasMomentum then grad
                else
                    let b = flush (if c.First then grad else fma grad c.Keep (buf.[i] * c.Momentum)) c.FlushBuf
                    bufOut.[i] <- b
                    if c.Nesterov then fma b c.Momentum grad else b
            pOut.[i] <- fma d c.NegLr param
        total

    /// One RMSprop step: <c>nu = alpha nu + (1 - alpha) g g</c>; centered,
    /// <c>mu = alpha mu + (1 - alpha) g</c> and <c>avg = sqrt(nu - mu mu) + eps</c>, else
    /// <c>avg = sqrt nu + eps</c>; with momentum <c>buf = momentum buf + g / avg</c> and
    /// <c>p = p - lr buf</c>, else <c>p = p - lr g / avg</c>. Spans of state the options do not
    /// keep are not touched. Returns the gradient's sum of squares (gradSquares).
    let inline private rms
        ([<InlineIfLambda>] fmaV: Vector< ^T> -> Vector< ^T> -> Vector< ^T> -> Vector< ^T>,
         [<InlineIfLambda>] fma: ^T -> ^T -> ^T -> ^T,
         [<InlineIfLambda>] squares: Vector< ^T> -> Vector<float>,
         c: RmsStep< ^T>, p: Span< ^T>, g: Span< ^T>, nu: Span< ^T>, mu: Span< ^T>, buf: Span< ^T>,
         pOut: Span< ^T>, nuOut: Span< ^T>, muOut: Span< ^T>, bufOut: Span< ^T>)
        : float =
        let pv = vectors p
        let gv = vectors g
        let nv = vectors nu
        let mv = vectors mu
        let bv = vectors buf
        let pov = vectors pOut
        let nov = vectors nuOut
        let mov = vectors muOut
        let bov = vectors bufOut
        let scale, l2, alpha, keep = Vector< ^T>(c.GradScale), Vector< ^T>(c.L2), Vector< ^T>(c.Alpha), Vector< ^T>(c.Keep)
        let floor, eps, momentum, negLr = Vector< ^T>(c.Floor), Vector< ^T>(c.Eps), Vector< ^T>(c.Momentum), Vector< ^T>(c.NegLr)
        let flushNu, flushMu, flushBuf = Vector< ^T>(c.FlushNu), Vector< ^T>(c.FlushMu), Vector< ^T>(c.FlushBuf)
        let mutable first = Vector<float>.Zero
        let mutable second = Vector<float>.Zero
        for i in 0 .. pv.Length - 1 do
            let param = pv.[i]
            let raw = gv.[i]
            let sum = first + squares raw // gradSquares
            first <- second
            second <- sum
            let grad = raw * scale
            let grad = if c.HasL2 then fmaV param l2 grad else grad
            let n1 = flushV (fmaV (keep * grad) grad (nv.[i] * alpha)) flushNu
            nov.[i] <- n1
            let centred =
                if c.Centered then
                    let m1 = flushV (fmaV grad keep (mv.[i] * alpha)) flushMu
                    mov.[i] <- m1
                    fmaV (-m1) m1 n1
                else n1
            let avg = Vector.SquareRoot(Vector.Max(centred, floor)) + eps
            if c.HasMomentum then
                let b = flushV (if c.First then grad / avg else bv.[i] * momentum + grad / avg) flushBuf
                bov.[i] <- b
                pov.[i] <- fmaV b negLr param
            else pov.[i] <- param + negLr * grad / avg
        let mutable total = Vector.Sum(first + second)
        for i in pv.Length * Vector< ^T>.Count .. p.Length - 1 do
            let param = p.[i]
            let raw = g.[i]
            let x = float raw
            total <- total + x * x
            let grad = raw * c.GradScale
            let grad = if c.HasL2 then fma param c.L2 grad else grad
            let n1 = flush (fma (c.Keep * grad) grad (nu.[i] * c.Alpha)) c.FlushNu
            nuOut.[i] <- n1
            let centred =
                if c.Centered then
                    let m1 = flush (fma grad c.Keep (mu.[i] * c.Alpha)) c.FlushMu
                    muOut.[i] <- m1
                    fma (-m1) m1 n1
                else n1
            let avg = sqrt (if centred < c.Floor then c.Floor else centred) + c.Eps
            if c.HasMomentum then
                let b = flush (if c.First then grad / avg else buf.[i] * c.Momentum + grad / avg) c.FlushBuf
                bufOut.[i] <- b
                pOut.[i] <- fma b c.NegLr param
            else pOut.[i] <- param + c.NegLr * grad / avg
        total

    /// A linear interpolation towards <paramref name="target"/> by <paramref name="weight"/>:
    /// <c>out = start + weight (target - start)</c>, computed as libtorch's vectorized lerp computes
    /// it (one fused multiply-add per element, from the nearer end: <c>fma(weight, target - start,
    /// start)</c> for |weight| below 0.5, else <c>fma(weight - 1, target - start, target)</c>). The
    /// output may be the start (in place).
    let inline private lerp
        ([<InlineIfLambda>] fmaV: Vector< ^T> -> Vector< ^T> -> Vector< ^T> -> Vector< ^T>,
         [<InlineIfLambda>] fma: ^T -> ^T -> ^T -> ^T,
         weight: ^T, small: bool, start: Span< ^T>, target: Span< ^T>, out: Span< ^T>)
        : unit =
        let sv = vectors start
        let tv = vectors target
        let ov = vectors out
        let coefficient = if small then weight else weight - LanguagePrimitives.GenericOne
        let c = Vector< ^T>(coefficient)
        if small then
            for i in 0 .. sv.Length - 1 do
                let a = sv.[i]
                ov.[i] <- fmaV c (tv.[i] - a) a
        else
            for i in 0 .. sv.Length - 1 do
                let b = tv.[i]
                ov.[i] <- fmaV c (b - sv.[i]) b
        for i in sv.Length * Vector< ^T>.Count .. start.Length - 1 do
            let a, b = start.[i], target.[i]
            out.[i] <- fma coefficient (b - a) (if small then a else b)

    let private fma32V (a: Vector<float32>) b c = Vector.FusedMultiplyAdd(a, b, c)
    let private fma32 (a: float32) b c = MathF.FusedMultiplyAdd(a, b, c)
    let private fma64V (a: Vector<float>) b c = Vector.FusedMultiplyAdd(a, b, c)
    let private fma64 (a: float) b c = Math.FusedMultiplyAdd(a, b, c)

    /// lerp on float32 memory (see lerp).
    let lerp32 (weight: float32, start, target, out) = lerp (fma32V, fma32, weight, abs weight < 0.5f, start, target, out)
    /// lerp on float64 memory (see lerp).
    let lerp64 (weight: float, start, target, out) = lerp (fma64V, fma64, weight, abs weight < 0.5, start, target, out)
    let inline private fma32W (a: Vector512<float32>) b c = Vector512.FusedMultiplyAdd(a, b, c)
    let inline private fma64W (a: Vector512<float>) b c = Vector512.FusedMultiplyAdd(a, b, c)
    let inline private squares32W (g: Vector512<float32>) : Vector512<float> =
        let struct (lo, hi) = Vector512.Widen g
        Vector512.FusedMultiplyAdd(lo, lo, hi * hi)
    let inline private squares64W (g: Vector512<float>) : Vector512<float> = g * g

    /// adam over the whole spans: adamWide first where 512-bit vectors are fast, then adam on the
    /// elements left.
    let inline private adamAll
        ([<InlineIfLambda>] fmaV: Vector< ^T> -> Vector< ^T> -> Vector< ^T> -> Vector< ^T>,
         [<InlineIfLambda>] fma: ^T -> ^T -> ^T -> ^T,
         [<InlineIfLambda>] squares: Vector< ^T> -> Vector<float>,
         [<InlineIfLambda>] fmaW: Vector512< ^T> -> Vector512< ^T> -> Vector512< ^T> -> Vector512< ^T>,
         [<InlineIfLambda>] squaresW: Vector512< ^T> -> Vector512<float>,
         c: AdamStep< ^T>, p: Span< ^T>, g: Span< ^T>, m: Span< ^T>, v: Span< ^T>, pOut: Span< ^T>, mOut: Span< ^T>, vOut: Span< ^T>) : float =
        if Vector512.IsHardwareAccelerated then
            let struct (n, sum) = adamWide (fmaW, squaresW, c, p, g, m, v, pOut, mOut, vOut)
            sum + adam (fmaV, fma, squares, c, p.Slice n, g.Slice n, m.Slice n, v.Slice n, pOut.Slice n, mOut.Slice n, vOut.Slice n)
        else adam (fmaV, fma, squares, c, p, g, m, v, pOut, mOut, vOut)

    /// Adam on float32 memory (see adamAll).
    let adam32 (c: AdamStep<float32>, p, g, m, v, pOut, mOut, vOut) = adamAll (fma32V, fma32, squares32, fma32W, squares32W, c, p, g, m, v, pOut, mOut, vOut)
    /// Adam on float64 memory (see adamAll).
    let adam64 (c: AdamStep<float>, p, g, m, v, pOut, mOut, vOut) = adamAll (fma64V, fma64, squares64, fma64W, squares64W, c, p, g, m, v, pOut, mOut, vOut)
    /// SGD on float32 memory (see sgd).
    let sgd32 (c: SgdStep<float32>, p, g, buf, pOut, bufOut) = sgd (fma32V, fma32, squares32, c, p, g, buf, pOut, bufOut)
    /// SGD on float64 memory (see sgd).
    let sgd64 (c: SgdStep<float>, p, g, buf, pOut, bufOut) = sgd (fma64V, fma64, squares64, c, p, g, buf, pOut, bufOut)
    /// RMSprop on float32 memory (see rms).
    let rms32 (c: RmsStep<float32>, p, g, nu, mu, buf, pOut, nuOut, muOut, bufOut) = rms (fma32V, fma32, squares32, c, p, g, nu, mu, buf, pOut, nuOut, muOut, bufOut)
    /// RMSprop on float64 memory (see rms).
    let rms64 (c: RmsStep<float>, p, g, nu, mu, buf, pOut, nuOut, muOut, bufOut) = rms (fma64V, fma64, squares64, c, p, g, nu, mu, buf, pOut, nuOut, muOut, bufOut)
