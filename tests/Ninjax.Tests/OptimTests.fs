module Ninjax.Tests.OptimTests

open System
open System.Collections.Generic
open Expecto
open TorchSharp
open TorchSharp.Modules
open Ninjax
open Ninjax.Tests.Helpers

// ---------------------------------------------------------------------------------------------
// Cross-check against torch.optim

/// Parameter shapes of different ranks, a scalar included.
let private shapes = [ "layer/w", [| 3L; 4L |]; "layer/b", [| 5L |]; "conv/k", [| 2L; 3L; 2L |]; "scale", [||] ]

/// Shapes long enough for every loop of the fused kernels: 43 and 63 elements are, in float32, two
/// and three 512-bit vectors, one 256-bit vector and a scalar tail (in float64, five and seven
/// 512-bit vectors and a tail).
let private wideShapes = [ "wide/w", [| 7L; 9L |]; "wide/b", [| 43L |] ]

/// Initial parameters of these shapes and 100 steps of gradients, drawn from a seeded generator.
let private problemOf (shapes: (string * int64[]) list) (dtype: torch.ScalarType) =
    use g = new torch.Generator(1234UL)
    let parameters = shapes |> List.map (fun (k, s) -> k, torch.randn(s, dtype = dtype, generator = g))
    let grads = List.init 100 (fun _ -> shapes |> List.map (fun (k, s) -> k, torch.randn(s, dtype = dtype, generator = g)))
    parameters, grads

/// The problem of the cross-checks.
let private problem = problemOf shapes

/// The parameters after torch.optim's optimizer took a step for each gradient set.
let private runTorch (make: Parameter list -> torch.optim.Optimizer) (parameters: (string * torch.Tensor) list) grads =
    let ps = parameters |> List.map (fun (_, t: torch.Tensor) -> new Parameter(t.clone (), requires_grad = true))
    let optimizer = make ps
    for step in grads do
        for p: Parameter, (_, g: torch.Tensor) in List.zip ps step do
            p.grad <- g.clone ()
        optimizer.step () |> ignore
    List.zip (List.map fst parameters) (ps |> List.map (fun p -> p.detach().clone ()))

/// The parameters after our transformation updated them for each gradient set.
let private runOurs (t: GradientTransformation) (parameters: (string * torch.Tensor) list) grads =
    let mutable ps = State.ofSeq parameters
    let mutable s = t.Init ps
    for step in grads do
        let updates, next = t.Update (State.ofSeq step) s ps
        ps <- Optax.applyUpdates ps updates
        s <- next
    ps

/// The parameters after our transformation's fused step (what the Optimizer module runs when a
/// transformation has one) updated them for each gradient set. With <paramref name="inPlace"/>
/// the step may overwrite every tensor it is given (as in a donating call); the parameters start
/// as copies, so the caller's tensors stay as they were.
let private runFusedWith (inPlace: bool) (t: GradientTransformation) (parameters: (string * torch.Tensor) list) grads =
    let apply = t.Apply |> Option.defaultWith (fun () -> failtest "the transformation has no fused step")
    let mutable ps = parameters |> List.map (fun (k, p: torch.Tensor) -> k, p.clone ()) |> State.ofSeq
    let mutable s = t.Init ps
    for step in grads do
        let result = apply { Grads = State.ofSeq step; OptState = s; Params = ps; GradScale = 1.0; MayOverwrite = fun _ -> inPlace }
        let next, state = result.Params, result.OptState
        if inPlace then
            for KeyValue(k, p) in State.toMap ps do
                Expect.isTrue (obj.ReferenceEquals(next.[k], p)) (sprintf "'%s' was updated in place" k)
        ps <- next
        s <- state
    ps

let private runFused t parameters grads = runFusedWith false t parameters grads

/// The same tensor's values in memory that is not contiguous (every other element of a larger
/// buffer), so a fused step cannot run its SIMD pass on it and takes the libtorch ops instead.
/// A scalar stays as it is (one element is always contiguous).
let private strided (t: torch.Tensor) : torch.Tensor =
    if t.NumberOfElements <= 1L then t.clone ()
    else torch.stack([| t; t |], -1L).select(-1L, 0L)

/// runFused with every parameter handed to each step in non-contiguous memory.
let private runFusedStrided (t: GradientTransformation) (parameters: (string * torch.Tensor) list) grads =
    let apply = t.Apply.Value
    let mutable ps = parameters |> List.map (fun (k, p: torch.Tensor) -> k, strided p) |> State.ofSeq
    Expect.isFalse (ps.["layer/w"].is_contiguous ()) "the parameters are not contiguous"
    let mutable s = t.Init ps
    for step in grads do
        let result = apply { Grads = State.ofSeq step; OptState = s; Params = ps; GradScale = 1.0; MayOverwrite = fun _ -> false }
        let next, state = result.Params, result.OptState
        ps <- State.map (fun _ p -> strided p) next
        s <- state
    ps

/// The largest relative difference over all parameters, each measured against its tensor's
/// scale: max |ours - torch| / max |torch|. (Elementwise relative error is meaningless for
/// entries that pass near zero; for the scalar parameter the two coincide.)
let private maxRelativeError (ours: State) (theirs: (string * torch.Tensor) list) =
    theirs
    |> List.map (fun (k, expected: torch.Tensor) ->
        let actual = ours.[k]
        Expect.equal actual.shape expected.shape (sprintf "shape of %s" k)
        Expect.equal actual.dtype expected.dtype (sprintf "dtype of %s" k)
        let rel = (actual - expected).abs().max().div (expected.abs().max ())
        rel.to_type(torch.float64).item<float> ())
    |> List.max

let private crossCheckOn problem (runner: GradientTransformation -> (string * torch.Tensor) list -> (string * torch.Tensor) list list -> State) name (dtype: torch.ScalarType) (tolerance: float) (ours: GradientTransformation) (theirs: Parameter list -> torch.optim.Optimizer) =
    testCase (sprintf "%s matches torch.optim after 100 steps (%O)" name dtype) <| fun () ->
        use _scope = torch.NewDisposeScope()
        let parameters, grads = problem dtype
        let expected = runTorch theirs parameters grads
        let actual = runner ours parameters grads
        // The parameters must have moved, or the comparison proves nothing.
        for k, p in parameters do
            Expect.isFalse (identical actual.[k] p) (sprintf "%s moved" k)
        let err = maxRelativeError actual expected
        Expect.isLessThan err tolerance (sprintf "%s: max relative error %g" name err)

let private crossCheckWith runner = crossCheckOn problem runner

let private crossCheck name dtype tolerance ours theirs = crossCheckWith runOurs name dtype tolerance ours theirs

let private asParams (ps: Parameter list) : IEnumerable<Parameter> = Seq.ofList ps

/// Name, our transformation, torch's optimizer, and the float32 tolerance. Float32 results of
/// 100 steps differ from a float64 run by up to about 1e-6 for both implementations (rounding);
/// float64 results are compared at 1e-13.
let private optimizers =
    [
        "Adam",
        Optax.adam 1e-2,
        (fun ps -> torch.optim.Adam(asParams ps, lr = 1e-2, beta1 = 0.9, beta2 = 0.999, eps = 1e-8) :> torch.optim.Optimizer),
        1e-6

        "Adam with L2 weight decay and other betas",
        Optax.adamWith { AdamOptions.Default with LearningRate = Schedule.constant 3e-3; Beta1 = 0.8; Beta2 = 0.99; Eps = 1e-6; WeightDecay = 0.1 },
        (fun ps -> torch.optim.Adam(asParams ps, lr = 3e-3, beta1 = 0.8, beta2 = 0.99, eps = 1e-6, weight_decay = 0.1)),
        1e-6

        // torch.optim.AdamW decays the parameters in place, a rounding step of its own, where the
        // Optax form adds the decay to the update: in float32 the two drift apart by about one
        // rounding per step (float64 agrees to 1e-15). With lr and weight decay powers of two the
        // factor (1 - lr * weight_decay) is exact in float32; with torch's default 0.01 it is not,
        // and torch's float32 result is itself 2e-6 off its float64 one.
        "AdamW",
        Optax.adamwWith { AdamOptions.Default with LearningRate = Schedule.constant (1.0 / 128.0); WeightDecay = 0.125 },
        (fun ps -> torch.optim.AdamW(asParams ps, lr = 1.0 / 128.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.125)),
        2e-6

        "AdamW with default weight decay",
        Optax.adamw 1e-2,
        (fun ps -> torch.optim.AdamW(asParams ps, lr = 1e-2, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01)),
        5e-6

        "SGD",
        Optax.sgd 0.05,
        (fun ps -> torch.optim.SGD(asParams ps, 0.05)),
        1e-6

        "SGD with momentum",
        Optax.sgdWith { SgdOptions.Default with LearningRate = Schedule.constant 0.05; Momentum = 0.9 },
        (fun ps -> torch.optim.SGD(asParams ps, 0.05, momentum = 0.9)),
        1e-6

        "SGD with Nesterov momentum and weight decay",
        Optax.sgdWith { SgdOptions.Default with LearningRate = Schedule.constant 0.05; Momentum = 0.9; Nesterov = true; WeightDecay = 0.01 },
        (fun ps -> torch.optim.SGD(asParams ps, 0.05, momentum = 0.9, nesterov = true, weight_decay = 0.01)),
        1e-6

        "SGD with dampened momentum",
        Optax.sgdWith { SgdOptions.Default with LearningRate = Schedule.constant 0.05; Momentum = 0.8; Dampening = 0.3 },
        (fun ps -> torch.optim.SGD(asParams ps, 0.05, momentum = 0.8, dampening = 0.3)),
        1e-6

        "RMSprop",
        Optax.rmsprop 1e-2,
        (fun ps -> torch.optim.RMSProp(asParams ps, lr = 1e-2, alpha = 0.99, eps = 1e-8)),
        1e-6

        "RMSprop centered with momentum and weight decay",
        Optax.rmspropWith { RmsPropOptions.Default with LearningRate = Schedule.constant 1e-3; Alpha = 0.9; Momentum = 0.9; Centered = true; WeightDecay = 0.01 },
        (fun ps -> torch.optim.RMSProp(asParams ps, lr = 1e-3, alpha = 0.9, eps = 1e-8, weight_decay = 0.01, momentum = 0.9, centered = true)),
        1e-6
    ]

// ---------------------------------------------------------------------------------------------
// The gradients' sum of squares that the fused steps read on the way

/// Shapes whose sizes leave SIMD tails and run the vector loops many times (their sums of squares
/// go to two accumulators in turn), and a scalar.
let private normShapes = [ "a/w", [| 37L; 29L |]; "a/b", [| 13L |]; "c/k", [| 3L; 5L; 7L |]; "s", [||] ]

/// Parameters of normShapes and three steps of their gradients, drawn in float32 and converted.
let private normProblem (dtype: torch.ScalarType) =
    use g = new torch.Generator(4321UL)
    let draw () = normShapes |> List.map (fun (k, s) -> k, torch.randn(s, generator = g).to_type dtype)
    draw (), List.init 3 (fun _ -> draw ())

/// Each step's reported sum of squares of a fused step beside Optax.globalNorm of the step's
/// gradients. Every step hands the step its parameters through <paramref name="layout"/>.
let private reportedSums (layout: torch.Tensor -> torch.Tensor) (gradScale: float) (t: GradientTransformation) (parameters: (string * torch.Tensor) list) grads =
    let apply = t.Apply.Value
    let mutable ps = parameters |> List.map (fun (k, p) -> k, layout p) |> State.ofSeq
    let mutable s = t.Init ps
    [ for step in grads do
          let g = State.ofSeq step
          let result = apply { Grads = g; OptState = s; Params = ps; GradScale = gradScale; MayOverwrite = fun _ -> false }
          ps <- State.map (fun _ p -> layout p) result.Params
          s <- result.OptState
          yield result.GradSumOfSquares, (Optax.globalNorm g).ToDouble() ]

/// Asserts a reported sum of squares is there and its square root is the norm to 1e-12 relative:
/// both sum in float64 (float32 elements widened), in different orders.
let private expectNormOf (name: string) (reported: float voption, norm: float) =
    match reported with
    | ValueSome sum -> Expect.floatClose { absolute = 0.0; relative = 1e-12 } (sqrt sum) norm (sprintf "%s: the square root of the reported sum is the global norm" name)
    | ValueNone -> failtestf "%s: the fused step reported no sum of squares" name

/// A module whose parameters (of one dtype; <c>w</c> transposed, so not contiguous, when asked)
/// an optimizer of any transformation trains on a fixed loss of a fixed input.
type private NormNet(transform: GradientTransformation, dtype: torch.ScalarType, transposed: bool) as this =
    inherit Module("net")
    let opt = this.Sub("opt", fun () -> Optimizer(transform))

    /// Deterministic values of a shape, in the net's dtype.
    static member Values (dtype: torch.ScalarType) (shape: int64[]) (phase: float) =
        let count = shape |> Array.fold (*) 1L
        torch.arange(count, dtype = torch.float64).mul(0.37.ToScalar()).add(phase.ToScalar()).sin().reshape(shape).to_type dtype

    member this.Loss(x: torch.Tensor) =
        let w = this.Get("w", fun () -> if transposed then (NormNet.Values dtype [| 29L; 37L |] 0.0).t () else NormNet.Values dtype [| 37L; 29L |] 0.0)
        let b = this.Get("b", fun () -> NormNet.Values dtype [| 29L |] 1.0)
        ((w * x).tanh () + b).square().sum ()

    member this.Targets = [ Target.Key(this.Path + "/w"); Target.Key(this.Path + "/b") ]

    /// One optimizer step; returns its metrics.
    member this.Step(x: torch.Tensor) = opt.Minimize(this.Loss, this.Targets, x)

/// Three steps of a NormNet: each step's GradNorm beside Optax.globalNorm of the gradients of
/// the same state (taken in a call of their own).
let private stepNorms (transform: GradientTransformation) (dtype: torch.ScalarType) (transposed: bool) : (torch.Tensor * torch.Tensor) list =
    let net = NormNet(transform, dtype, transposed)
    let x = NormNet.Values dtype [| 37L; 29L |] 2.0
    let train = Nj.purify net.Step
    let gradients = Nj.purify (fun x -> let _, _, grads = Nj.grad net.Loss net.Targets x in grads)
    let mutable state = Nj.init 0L net.Step State.empty x
    Expect.equal (state.["net/w"].is_contiguous ()) (not transposed) "w is contiguous unless transposed"
    [ for _ in 1..3 do
          let _, grads = gradients state x
          let next, metrics = train state x
          state <- next
          yield metrics.GradNorm, Optax.globalNorm grads ]

/// The fused steps' parameters and optimizer state after 20 steps from parameters and gradients
/// drawn by System.Random (the same numbers on every platform), as digests of their keys and
/// bytes (SHA-256, 16 hex digits). Every element of the kernels goes through the same IEEE
/// operations whatever the SIMD width, so the digests are too.
let private fusedDigests (t: GradientTransformation) (dtype: torch.ScalarType) (gradScale: float) : string * string =
    let rnd = Random(42)
    let draw (shape: int64[]) =
        let count = shape |> Array.fold (*) 1L |> int
        torch.tensor(Array.init count (fun _ -> rnd.NextDouble() * 2.0 - 1.0), dtype = Nullable dtype).reshape shape
    let digest (s: State) =
        use hash = Security.Cryptography.IncrementalHash.CreateHash Security.Cryptography.HashAlgorithmName.SHA256
        for KeyValue(k, v) in State.toMap s do
            hash.AppendData(Text.Encoding.UTF8.GetBytes k)
            hash.AppendData(v.contiguous().bytes.ToArray())
        Convert.ToHexString(hash.GetHashAndReset()).Substring(0, 16)
    let apply = t.Apply.Value
    let mutable ps = normShapes |> List.map (fun (k, s) -> k, draw s) |> State.ofSeq
    let mutable s = t.Init ps
    for _ in 1..20 do
        let grads = normShapes |> List.map (fun (k, shape) -> k, draw shape) |> State.ofSeq
        let result = apply { Grads = grads; OptState = s; Params = ps; GradScale = gradScale; MayOverwrite = fun _ -> false }
        ps <- result.Params
        s <- result.OptState
    digest ps, digest s

// ---------------------------------------------------------------------------------------------
// The Quickstart model with an optimizer module

/// The seed README's Quickstart model, training with an Optimizer module instead of manual SGD.
/// The seed Quickstart model (ScenarioTests), with Adam at 1e-2.
let private OptModel (size: int) = ScenarioTests.MyModel(size)

let private data () =
    use g = new torch.Generator(7UL)
    torch.randn([| 64L; 32L |], generator = g), torch.randn([| 64L; 3L |], generator = g)

let private count (state: State) = state.["model/opt/count"].item<int64> ()

[<Tests>]
let tests =
    testList "optim" [
        testList "torch.optim cross-check" [
            for name, ours, theirs, tolerance32 in optimizers do
                crossCheck name torch.float32 tolerance32 ours theirs
                crossCheck name torch.float64 1e-13 ours theirs
            // The fused steps follow torch.optim's order of operations, AdamW's in-place decay
            // included, so they meet 1e-6 in float32 everywhere.
            for name, ours, theirs, _ in optimizers do
                if ours.Apply.IsSome then
                    crossCheckWith runFused (name + ", fused step") torch.float32 1e-6 ours theirs
                    crossCheckWith runFused (name + ", fused step") torch.float64 1e-13 ours theirs
                    crossCheckWith (runFusedWith true) (name + ", fused step in place") torch.float32 1e-6 ours theirs
                    crossCheckWith (runFusedWith true) (name + ", fused step in place") torch.float64 1e-13 ours theirs
                    // Memory the SIMD pass cannot take: the libtorch ops (Adam), or Update (SGD, RMSprop).
                    crossCheckWith runFusedStrided (name + ", fused step on non-contiguous parameters") torch.float32 1e-6 ours theirs
            // Tensors long enough for the 512-bit loops where the processor has them.
            for name, ours, theirs, _ in optimizers do
                for dtype, tolerance in [ torch.float32, 1e-6; torch.float64, 1e-13 ] do
                    crossCheckOn (problemOf wideShapes) runFused (name + ", fused step on long tensors") dtype tolerance ours theirs
                    crossCheckOn (problemOf wideShapes) (runFusedWith true) (name + ", fused step in place on long tensors") dtype tolerance ours theirs
        ]

        testCase "every optimizer has a fused step, and so does gradient clipping before one" <| fun () ->
            for name, ours, _, _ in optimizers do
                Expect.isSome ours.Apply (sprintf "%s has a fused step" name)
            Expect.isSome (Optax.chain [ Optax.clipByGlobalNorm 1.0; Optax.adam 1e-3 ]).Apply "clip, then Adam"
            Expect.isSome (Optax.chain [ Optax.scale 0.5; Optax.clipByGlobalNorm 1.0; Optax.sgd 0.1 ]).Apply "scale, clip, then SGD"
            Expect.isNone (Optax.chain [ Optax.adam 1e-3; Optax.clipByGlobalNorm 1.0 ]).Apply "Adam, then clip (clips updates, not gradients)"
            Expect.isNone (Optax.scaleByAdam 0.9 0.999 1e-8).Apply "a transformation without one"

        testList "gradient clipping folded into the fused step" [
            // maxNorm 1 clips every step of this problem (its gradients have norms around 5);
            // 100 never does. Both must agree with the chain's Update (whose AdamW form is itself
            // 2e-6 to 5e-6 off torch.optim in float32, see the cross-check above).
            for maxNorm in [ 1.0; 100.0 ] do
                for name, inner, tolerance in
                    [ "Adam", Optax.adam 1e-2, 1e-6
                      "AdamW", Optax.adamw 1e-2, 5e-6
                      "SGD with momentum", Optax.sgdWith { SgdOptions.Default with LearningRate = Schedule.constant 0.05; Momentum = 0.9 }, 1e-6
                      "RMSprop", Optax.rmsprop 1e-2, 1e-6 ] do
                    testCase (sprintf "clip to %g, then %s: the fused step equals Update after 100 steps" maxNorm name) <| fun () ->
                        use _scope = torch.NewDisposeScope()
                        let parameters, grads = problem torch.float32
                        let chained = Optax.chain [ Optax.clipByGlobalNorm maxNorm; inner ]
                        let viaUpdate = runOurs chained parameters grads
                        let fused = runFused chained parameters grads
                        let unclipped = runFused inner parameters grads
                        let err = maxRelativeError fused [ for k, _ in parameters -> k, viaUpdate.[k] ]
                        Expect.isLessThan err tolerance (sprintf "max relative error %g" err)
                        let moved = maxRelativeError fused [ for k, _ in parameters -> k, unclipped.[k] ]
                        if maxNorm = 1.0 then Expect.isGreaterThan moved 1e-3 "clipping changed the result"
                        else Expect.equal moved 0.0 "nothing to clip: the same result as without clipping"
        ]

        testList "the gradient norm read by the fused step" [
            testCase "each fused step reports its gradients' sum of squares, before the gradient scale and weight decay" <| fun () ->
                for name, ours, _, _ in optimizers do
                    for dtype in [ torch.float32; torch.float64 ] do
                        for gradScale in [ 1.0; 0.25 ] do
                            let parameters, grads = normProblem dtype
                            for reported in reportedSums id gradScale ours parameters grads do
                                expectNormOf (sprintf "%s, %O, gradient scale %g" name dtype gradScale) reported

            testCase "clipping chained before a fused step: the step reports the unclipped norm" <| fun () ->
                for name, chained in
                    [ "clip, then Adam", Optax.chain [ Optax.clipByGlobalNorm 0.5; Optax.adam 1e-2 ]
                      "scale, clip, then SGD with momentum", Optax.chain [ Optax.scale 0.5; Optax.clipByGlobalNorm 1.0; Optax.sgdWith { SgdOptions.Default with Momentum = 0.9 } ]
                      "clip, then RMSprop", Optax.chain [ Optax.clipByGlobalNorm 0.5; Optax.rmsprop 1e-2 ] ] do
                    let parameters, grads = normProblem torch.float32
                    for reported, norm in reportedSums id 1.0 chained parameters grads do
                        Expect.isGreaterThan norm 10.0 "the gradients are clipped (their norm is far above the maximum)"
                        expectNormOf name (reported, norm)

            testCase "a fused step whose parameters take libtorch ops reports no sum of squares" <| fun () ->
                let parameters32, grads32 = normProblem torch.float32
                for name, ours, _, _ in optimizers do
                    for reported, _ in reportedSums strided 1.0 ours parameters32 grads32 do
                        Expect.equal reported ValueNone (sprintf "%s on non-contiguous parameters" name)
                // Adam takes libtorch ops per parameter: one that is not contiguous is enough.
                let oneStrided (p: torch.Tensor) = if p.dim () = 3L then strided p else p
                for reported, _ in reportedSums oneStrided 1.0 (Optax.adam 1e-2) parameters32 grads32 do
                    Expect.equal reported ValueNone "Adam with one non-contiguous parameter"
                let parameters16, grads16 = normProblem torch.float16
                for name, ours in [ "Adam", Optax.adam 1e-2; "SGD with momentum", Optax.sgdWith { SgdOptions.Default with Momentum = 0.9 }; "RMSprop", Optax.rmsprop 1e-2 ] do
                    for reported, _ in reportedSums id 1.0 ours parameters16 grads16 do
                        Expect.equal reported ValueNone (sprintf "%s in float16" name)

            // Computed with the kernels before they summed the gradients' squares (commit b471551):
            // reading the sum must not change a bit of any parameter or moment. A deliberate change
            // of the kernels' rounding changes these; recompute them then (fusedDigests).
            testList "the fused steps' parameters and moments are bit for bit as before they read the norm" [
                let adamOptions = { AdamOptions.Default with LearningRate = Schedule.constant 1e-2; Beta1 = 0.5; Beta2 = 0.75 }
                // Betas whose powers are exact, so that no libm's pow can move a bit of the constants.
                for name, t, gradScale, expected in
                    [ "Adam with L2 weight decay", Optax.adamWith { adamOptions with WeightDecay = 0.125 }, 0.75, [ "4D50EA314CA99F43", "226608DB2D6BF685"; "8995F1E2C7100D60", "CAA154ED501D0EC6" ]
                      "AdamW", Optax.adamwWith { adamOptions with WeightDecay = 0.125 }, 1.0, [ "676F5B0FCB415ACF", "210628C14E27318E"; "D28C0A35F84E0677", "E98CEF71154BA913" ]
                      "SGD", Optax.sgd 0.05, 0.75, [ "FE0F96DB9BADED85", "78D5D1A5F02003BF"; "A401F4A54C8ECDE8", "78D5D1A5F02003BF" ]
                      "SGD with Nesterov momentum and weight decay", Optax.sgdWith { SgdOptions.Default with LearningRate = Schedule.constant 0.05; Momentum = 0.9; Nesterov = true; WeightDecay = 0.01 }, 1.0, [ "39168D6C3B3ECEFF", "F736E093A0F8357E"; "15D8B3D0221A79B9", "B0F9EF305A19F8B1" ]
                      "SGD with dampened momentum", Optax.sgdWith { SgdOptions.Default with LearningRate = Schedule.constant 0.05; Momentum = 0.8; Dampening = 0.3 }, 0.75, [ "464FD09BE219C2C3", "1E1A6EB977589049"; "A0F45B202C3AF8BC", "44BDFA657EC1B07A" ]
                      "RMSprop", Optax.rmsprop 1e-2, 0.75, [ "7020228B71075096", "34351AD4F9A61782"; "5B194F64F3E5536E", "53B3817606163B62" ]
                      "RMSprop centered with momentum and weight decay", Optax.rmspropWith { RmsPropOptions.Default with LearningRate = Schedule.constant 1e-3; Alpha = 0.9; Momentum = 0.9; Centered = true; WeightDecay = 0.01 }, 1.0, [ "14D8C91CC2C066D4", "13A8A5B293D9C9F1"; "1CFE64FFFBCAEA04", "53B6117677591753" ] ] do
                    testCase name <| fun () ->
                        use _scope = torch.NewDisposeScope()
                        let actual = [ for dtype in [ torch.float32; torch.float64 ] -> fusedDigests t dtype gradScale ]
                        Expect.equal actual expected "digests of the parameters and the optimizer state after 20 steps (float32, float64)"
            ]

            testList "the Optimizer module's GradNorm" [
                for name, transform in
                    [ "Adam", Optax.adam 1e-2
                      "SGD with momentum", Optax.sgdWith { SgdOptions.Default with LearningRate = Schedule.constant 0.01; Momentum = 0.9 }
                      "RMSprop", Optax.rmsprop 1e-3 ] do
                    for dtype, tolerance in [ torch.float32, 1e-6; torch.float64, 1e-12 ] do
                        testCase (sprintf "%s, %O: the fused step's norm is the gradients' global norm" name dtype) <| fun () ->
                            for gradNorm, norm in stepNorms transform dtype false do
                                Expect.equal gradNorm.dtype dtype "in the loss's dtype"
                                Expect.floatClose { absolute = 0.0; relative = tolerance } (gradNorm.ToDouble()) (norm.ToDouble()) "GradNorm"

                testCase "GradNorm comes from the fused step's sum of squares: the optimizer makes no pass of its own" <| fun () ->
                    let adam = Optax.adam 1e-2
                    let reporting (sum: float voption) =
                        { adam with Apply = adam.Apply |> Option.map (fun apply -> fun input -> { apply input with GradSumOfSquares = sum }) }
                    for gradNorm, norm in stepNorms (reporting (ValueSome 16.0)) torch.float32 false do
                        Expect.notEqual (norm.ToDouble()) 4.0 "the true norm is another"
                        expectIdentical gradNorm (torch.tensor 4.0f) "the square root of the reported 16"
                    // A step that reports none, and a transformation without a fused step: the optimizer's own pass.
                    for transform in [ reporting ValueNone; Optax.chain [ Optax.scaleByAdam 0.9 0.999 1e-8; Optax.scaleByLearningRate (Schedule.constant 1e-2) ] ] do
                        for gradNorm, norm in stepNorms transform torch.float32 false do
                            expectIdentical gradNorm (norm.to_type torch.float32) "globalNorm of the gradients"

                testCase "with clipping chained before Adam, GradNorm is the norm before clipping" <| fun () ->
                    for gradNorm, norm in stepNorms (Optax.chain [ Optax.clipByGlobalNorm 0.01; Optax.adam 1e-2 ]) torch.float32 false do
                        Expect.isGreaterThan (norm.ToDouble()) 1.0 "the gradients are clipped"
                        Expect.floatClose { absolute = 0.0; relative = 1e-6 } (gradNorm.ToDouble()) (norm.ToDouble()) "the unclipped norm"

                testCase "parameters that take libtorch ops (not contiguous, float16): GradNorm is still the gradients' norm" <| fun () ->
                    for name, transform, dtype, transposed in
                        [ "Adam, a transposed weight", Optax.adam 1e-2, torch.float32, true
                          "SGD with momentum, a transposed weight", Optax.sgdWith { SgdOptions.Default with Momentum = 0.9 }, torch.float32, true
                          "Adam in float16", Optax.adam 1e-2, torch.float16, false ] do
                        for gradNorm, norm in stepNorms transform dtype transposed do
                            expectIdentical gradNorm (norm.to_type dtype) name
            ]
        ]

        testCase "the fused Adam step matches torch.optim where second moments are zero or subnormal (dead units)" <| fun () ->
            // Zero and subnormal second moments take libtorch's slow sqrt path, so the fused step
            // clamps them first; the result must not change. Row 0 of layer/w never gets a
            // gradient; row 1 gets gradients of 1e-20, whose squares are subnormal in float32, on
            // parameters of 1e-12, so its updates are visible and depend on the denominator.
            use _scope = torch.NewDisposeScope()
            let parameters, grads = problem torch.float32
            let parameters =
                parameters
                |> List.map (fun (k, p: torch.Tensor) ->
                    if k <> "layer/w" then k, p
                    else
                        let p = p.clone ()
                        p.[1L].mul_ (1e-12f.ToScalar()) |> ignore
                        k, p)
            let dead =
                grads
                |> List.map (
                    List.map (fun (k, g: torch.Tensor) ->
                        if k <> "layer/w" then k, g
                        else
                            let g = g.clone ()
                            g.[0L].zero_ () |> ignore
                            g.[1L].mul_ (1e-20f.ToScalar()) |> ignore
                            k, g)
                )
            let expected = runTorch (fun ps -> torch.optim.Adam(asParams ps, lr = 1e-2)) parameters dead
            let actual = runFused (Optax.adam 1e-2) parameters dead
            let err = maxRelativeError actual expected
            Expect.isLessThan err 1e-6 (sprintf "max relative error %g" err)
            let theirs = expected |> List.find (fun (k, _) -> k = "layer/w") |> snd
            expectIdentical actual.["layer/w"].[0L] theirs.[0L] "the row without gradients, bit for bit"
            expectIdentical actual.["layer/w"].[1L] theirs.[1L] "the row with subnormal squared gradients, bit for bit"
            let start = parameters |> List.find (fun (k, _) -> k = "layer/w") |> snd
            Expect.isFalse (identical actual.["layer/w"].[1L] start.[1L]) "the row with tiny gradients moved"

        testCase "moments of units whose gradients stop decay to zero, never to subnormal numbers" <| fun () ->
            // Subnormal moments make every vector operation that touches them take a microcode
            // assist (a fused Adam step over a trained MLP ran 7x slower), so the loops store what
            // would decay into them as zero. torch.optim keeps them; the parameters must agree.
            use _scope = torch.NewDisposeScope()
            let parameters, grads = problem torch.float32
            // 20 steps of gradients, then 1,000 steps in which layer/w gets none (a dead unit):
            // 0.9^1000 takes any first moment far below the smallest normal float32.
            let stopped =
                (grads |> List.truncate 20)
                @ List.init 1000 (fun i ->
                    grads.[20 + i % 80] |> List.map (fun (k, g: torch.Tensor) -> k, (if k = "layer/w" then torch.zeros_like g else g)))
            let isSubnormal (t: torch.Tensor) =
                let a = t.abs ()
                a.gt(0.0.ToScalar()).logical_and(a.lt (1.1754943508222875e-38.ToScalar())).any().item<bool> ()
            for name, ours, theirs in
                [ "Adam", Optax.adam 1e-2, (fun ps -> torch.optim.Adam(asParams ps, lr = 1e-2) :> torch.optim.Optimizer)
                  "SGD with momentum", Optax.sgdWith { SgdOptions.Default with LearningRate = Schedule.constant 0.05; Momentum = 0.9 }, (fun ps -> torch.optim.SGD(asParams ps, 0.05, momentum = 0.9))
                  "RMSprop centered with momentum", Optax.rmspropWith { RmsPropOptions.Default with LearningRate = Schedule.constant 1e-3; Alpha = 0.9; Momentum = 0.9; Centered = true },
                  (fun ps -> torch.optim.RMSProp(asParams ps, lr = 1e-3, alpha = 0.9, eps = 1e-8, momentum = 0.9, centered = true)) ] do
                let apply = ours.Apply.Value
                let mutable ps = parameters |> List.map (fun (k, p: torch.Tensor) -> k, p.clone ()) |> State.ofSeq
                let mutable s = ours.Init ps
                for step in stopped do
                    let result = apply { Grads = State.ofSeq step; OptState = s; Params = ps; GradScale = 1.0; MayOverwrite = fun _ -> true }
                    let next, state = result.Params, result.OptState
                    ps <- next
                    s <- state
                for KeyValue(k, t) in State.toMap s do
                    if t.is_floating_point () then Expect.isFalse (isSubnormal t) (sprintf "%s: no subnormal numbers in '%s'" name k)
                let expected = runTorch theirs parameters stopped
                let err = maxRelativeError ps expected
                Expect.isLessThan err 1e-6 (sprintf "%s: max relative error %g" name err)

        testList "schedules" [
            testCase "constant is the same at every step" <| fun () ->
                let s = Schedule.constant 0.3
                Expect.equal [ s 0L; s 1L; s 1000000L ] [ 0.3; 0.3; 0.3 ] "values"

            testCase "linearWarmup rises linearly, then stays at the peak" <| fun () ->
                let s = Schedule.linearWarmup 0.0 1.0 10L
                Expect.equal [ s 0L; s 5L; s 10L; s 11L; s 100L ] [ 0.0; 0.5; 1.0; 1.0; 1.0 ] "values"
                Expect.floatClose Accuracy.veryHigh (Schedule.linearWarmup 0.1 0.5 4L 1L) 0.2 "from a nonzero start"

            testCase "linearWarmupInto hands over to the next schedule at the end of the warmup" <| fun () ->
                let s = Schedule.linearWarmupInto 0.0 10L (Schedule.cosineDecay 1.0 100L 0.0)
                Expect.equal (s 5L) 0.5 "halfway through the warmup"
                Expect.equal (s 10L) 1.0 "the decay starts at its initial value"
                Expect.floatClose Accuracy.veryHigh (s 60L) 0.5 "halfway through the decay"
                Expect.floatClose Accuracy.veryHigh (s 110L) 0.0 "end of the decay"

            testCase "cosineDecay falls along half a cosine to alpha times the initial value" <| fun () ->
                let s = Schedule.cosineDecay 2.0 100L 0.1
                Expect.equal (s 0L) 2.0 "start"
                Expect.floatClose Accuracy.veryHigh (s 50L) (2.0 * (0.9 * 0.5 + 0.1)) "middle"
                Expect.floatClose Accuracy.veryHigh (s 25L) (2.0 * (0.9 * 0.5 * (1.0 + cos (Math.PI / 4.0)) + 0.1)) "quarter"
                Expect.floatClose Accuracy.veryHigh (s 100L) 0.2 "end"
                Expect.floatClose Accuracy.veryHigh (s 1000L) 0.2 "after the end"

            testCase "warmupCosineDecay warms up, then decays to the end value at decaySteps" <| fun () ->
                let s = Schedule.warmupCosineDecay 0.0 1.0 10L 110L 0.1
                Expect.equal [ s 0L; s 5L; s 10L ] [ 0.0; 0.5; 1.0 ] "warmup"
                Expect.floatClose Accuracy.veryHigh (s 60L) 0.55 "middle of the decay"
                Expect.floatClose Accuracy.veryHigh (s 110L) 0.1 "end"
                Expect.floatClose Accuracy.veryHigh (s 500L) 0.1 "after the end"

            testCase "bad schedule arguments are refused, naming the argument" <| fun () ->
                mentions (throwsWith<ArgumentOutOfRangeException> (fun () -> Schedule.linearWarmup 0.0 1.0 0L |> ignore)) [ "warmupSteps" ]
                mentions (throwsWith<ArgumentOutOfRangeException> (fun () -> Schedule.cosineDecay 1.0 10L 1.5 |> ignore)) [ "alpha" ]
                mentions (throwsWith<ArgumentOutOfRangeException> (fun () -> Schedule.warmupCosineDecay 0.0 1.0 10L 10L 0.0 |> ignore)) [ "decaySteps" ]

            testCase "scaleByLearningRate follows the schedule through the step count" <| fun () ->
                let schedule = Schedule.linearWarmup 0.0 1.0 4L
                let t = Optax.sgdWith { SgdOptions.Default with LearningRate = schedule }
                let ps = State.ofSeq [ "w", vec [ 0.0f; 0.0f ] ]
                let grads = State.ofSeq [ "w", vec [ 1.0f; 2.0f ] ]
                let mutable s = t.Init ps
                Expect.equal (s.[Optax.CountKey].dtype) torch.int64 "count is int64"
                for step in 0L .. 6L do
                    let u, next = t.Update grads s ps
                    let lr = schedule step
                    expectIdentical u.["w"] (vec [ float32 -lr; float32 (-2.0 * lr) ]) (sprintf "update at step %d" step)
                    Expect.equal (next.[Optax.CountKey].item<int64> ()) (step + 1L) "count"
                    Expect.equal (next.[Optax.LearningRateKey].item<double> ()) lr "recorded learning rate"
                    s <- next
        ]

        testList "transformations" [
            testCase "clipByGlobalNorm scales to exactly the maximum norm" <| fun () ->
                let grads = State.ofSeq [ "a", vec [ 3.0f ]; "b", vec [ 0.0f; 4.0f ] ]
                let u, s = (Optax.clipByGlobalNorm 1.0).Update grads State.empty State.empty
                Expect.equal (State.count s) 0 "no state"
                expectClose u.["a"] (vec [ 0.6f ]) 1e-7 "a"
                expectClose u.["b"] (vec [ 0.0f; 0.8f ]) 1e-7 "b"
                Expect.floatClose Accuracy.high (Optax.globalNorm(u).item<double> ()) 1.0 "norm after clipping"

            testCase "clipByGlobalNorm leaves small and zero gradients unchanged" <| fun () ->
                let clip = Optax.clipByGlobalNorm 10.0
                let grads = State.ofSeq [ "a", vec [ 3.0f ]; "b", vec [ 0.0f; 4.0f ] ]
                let u, _ = clip.Update grads State.empty State.empty
                expectSameState u grads "within the norm"
                let zeros = State.ofSeq [ "a", torch.zeros 3L ]
                let z, _ = clip.Update zeros State.empty State.empty
                expectSameState z zeros "zero norm"

            testCase "globalNorm is the L2 norm over all tensors" <| fun () ->
                let s = State.ofSeq [ "a", vec [ 1.0f; 2.0f ]; "b", torch.tensor 2.0; "c", vec [ 4.0f ] ]
                // Each tensor's norm is taken in its own dtype (float32 here), so agreement is to float32 precision.
                Expect.floatClose { absolute = 0.0; relative = 1e-6 } (Optax.globalNorm(s).item<double> ()) 5.0 "sqrt(1 + 4 + 4 + 16)"

            testCase "chain applies its members in order" <| fun () ->
                let grads = State.ofSeq [ "a", vec [ 3.0f; 4.0f ] ]
                let scaleThenClip, _ = (Optax.chain [ Optax.scale 2.0; Optax.clipByGlobalNorm 1.0 ]).Update grads State.empty State.empty
                let clipThenScale, _ = (Optax.chain [ Optax.clipByGlobalNorm 1.0; Optax.scale 2.0 ]).Update grads State.empty State.empty
                expectClose scaleThenClip.["a"] (vec [ 0.6f; 0.8f ]) 1e-7 "scale, then clip"
                expectClose clipThenScale.["a"] (vec [ 1.2f; 1.6f ]) 1e-7 "clip, then scale"

            testCase "addDecayedWeights adds weightDecay times the parameters" <| fun () ->
                let ps = State.ofSeq [ "w", vec [ 1.0f; -2.0f ] ]
                let grads = State.ofSeq [ "w", vec [ 0.5f; 0.5f ] ]
                let u, _ = (Optax.addDecayedWeights 0.1).Update grads State.empty ps
                expectClose u.["w"] (vec [ 0.6f; 0.3f ]) 1e-7 "g + 0.1 p"

            testCase "adam's state has mu, nu and count keyed by parameter" <| fun () ->
                let ps = State.ofSeq [ "model/h1/w", torch.ones(2L, 3L); "model/b", torch.ones 3L ]
                let s = (Optax.adam 1e-3).Init ps
                Expect.equal
                    (State.keys s)
                    [ "count"; "learning_rate"; "mu/model/b"; "mu/model/h1/w"; "nu/model/b"; "nu/model/h1/w" ]
                    "keys"
                expectIdentical s.["mu/model/h1/w"] (torch.zeros(2L, 3L)) "zero moments"
                expectIdentical s.["count"] (torch.tensor 0L) "count"

            testCase "Update never changes the states it is given" <| fun () ->
                let ps = State.ofSeq [ "w", vec [ 1.0f; 2.0f ]; "b", vec [ 0.5f ] ]
                let grads = State.ofSeq [ "w", vec [ 0.1f; -0.2f ]; "b", vec [ 0.3f ] ]
                let t = Optax.chain [ Optax.clipByGlobalNorm 0.1; Optax.rmspropWith { RmsPropOptions.Default with Momentum = 0.9; Centered = true; WeightDecay = 0.1 } ]
                let s0 = t.Init ps
                let s1 = snd (t.Update grads s0 ps)
                let before = [ copyState ps; copyState grads; copyState s1 ]
                let u, s2 = t.Update grads s1 ps
                Optax.applyUpdates ps u |> ignore
                List.iter2 (fun (a: State) b -> expectSameState a b "input unchanged") [ ps; grads; s1 ] before
                Expect.equal (s2.["count"].item<int64> ()) 2L "count advanced"

            testCase "chaining two transformations with the same keys needs scoped" <| fun () ->
                let ps = State.ofSeq [ "w", vec [ 1.0f ] ]
                let twice = Optax.chain [ Optax.scaleByAdam 0.9 0.999 1e-8; Optax.scaleByAdam 0.9 0.999 1e-8 ]
                mentions (throwsWith<ArgumentException> (fun () -> twice.Init ps |> ignore)) [ "mu/w"; "scoped" ]
                let scoped = Optax.chain [ Optax.scaleByAdam 0.9 0.999 1e-8; Optax.scoped "second" (Optax.scaleByAdam 0.9 0.999 1e-8) ]
                let s = scoped.Init ps
                Expect.containsAll (State.keys s) [ "mu/w"; "second/mu/w"; "second/count"; "count" ] "keys"
                let _, s1 = scoped.Update (State.ofSeq [ "w", vec [ 1.0f ] ]) s ps
                Expect.equal (State.keys s1) (State.keys s) "same keys after an update"
                Expect.equal (s1.["second/count"].item<int64> ()) 1L "scoped count"

            testCase "bad hyperparameters are refused, naming them" <| fun () ->
                mentions (throwsWith<ArgumentOutOfRangeException> (fun () -> Optax.adamWith { AdamOptions.Default with Beta1 = 1.0 } |> ignore)) [ "beta1" ]
                mentions (throwsWith<ArgumentOutOfRangeException> (fun () -> Optax.sgd -0.1 |> ignore)) [ "learningRate" ]
                mentions (throwsWith<ArgumentException> (fun () -> Optax.sgdWith { SgdOptions.Default with Nesterov = true } |> ignore)) [ "Nesterov"; "Momentum" ]
                mentions (throwsWith<ArgumentOutOfRangeException> (fun () -> Optax.clipByGlobalNorm 0.0 |> ignore)) [ "maxNorm" ]

            testCase "moments of another shape are refused, naming the key and both shapes" <| fun () ->
                let t = Optax.adam 1e-3
                let s = t.Init(State.ofSeq [ "w", torch.zeros 3L ])
                let msg = throwsWith<ArgumentException> (fun () -> t.Update (State.ofSeq [ "w", torch.ones 4L ]) s (State.ofSeq [ "w", torch.ones 4L ]) |> ignore)
                mentions msg [ "mu/w"; "'w'"; "[3]"; "[4]" ]
        ]

        testList "Optimizer module" [
            testCase "init creates the optimizer state and leaves the parameters as initialised" <| fun () ->
                let x, y = data ()
                let state = Nj.init 0L (OptModel 3).Step State.empty (x, y)
                let plain = Nj.init 0L (OptModel 3).Loss State.empty (x, y)
                let paramKeys = State.keys plain
                for k in paramKeys do
                    expectIdentical state.[k] plain.[k] (sprintf "parameter %s as initialised" k)
                let optKeys = State.keys state |> List.filter (fun k -> k.StartsWith "model/opt/")
                Expect.equal
                    optKeys
                    ([ "model/opt/count"; "model/opt/learning_rate" ]
                     @ [ for k in paramKeys -> "model/opt/mu/" + k ]
                     @ [ for k in paramKeys -> "model/opt/nu/" + k ]
                     @ [ "model/opt/targets" ])
                    "optimizer entries"
                Expect.equal (State.count state) (paramKeys.Length + optKeys.Length) "nothing else"
                Expect.equal (count state) 0L "count starts at 0"
                for k in paramKeys do
                    expectIdentical state.["model/opt/mu/" + k] (torch.zeros_like plain.[k]) (sprintf "mu of %s" k)

            testCase "the loss falls over 20 steps and the count advances by one per call" <| fun () ->
                let x, y = data ()
                let model = OptModel 3
                let state = Nj.init 0L model.Step State.empty (x, y)
                let run = runSteps 20 (Nj.purify model.Step) state (x, y)
                let losses = run |> List.map (fun (_, m) -> m.Loss.item<float32> ())
                Expect.isLessThan (List.last losses) (List.head losses * 0.5f) (sprintf "loss falls: %A" losses)
                Expect.equal (run |> List.map (fst >> count)) [ 1L .. 20L ] "count"
                for _, m in run do
                    Expect.equal m.LearningRate (Some 1e-2) "learning rate"
                    Expect.isGreaterThan (m.GradNorm.item<float32> ()) 0.0f "gradient norm"
                let s1 = fst run.Head
                Expect.isFalse (identical s1.["model/opt/mu/model/h1/w"] state.["model/opt/mu/model/h1/w"]) "moments move"
                Expect.isFalse (identical s1.["model/h1/w"] state.["model/h1/w"]) "parameters move"
                Expect.equal (State.keys s1) (State.keys state) "no new keys"

            testCase "the metrics report the gradient norm of the step" <| fun () ->
                let x, y = data ()
                let model = OptModel 3
                let state = Nj.init 0L model.Step State.empty (x, y)
                let _, metrics = Nj.purify model.Step state (x, y)
                let _, (loss, _, grads) = Nj.purify (fun (x, y) -> Nj.grad model.Loss model.Targets (x, y)) state (x, y)
                expectIdentical metrics.Loss loss "loss"
                expectClose metrics.GradNorm (Optax.globalNorm(grads).to_type torch.float32) 1e-6 "gradient norm"

            testCase "a training step keeps only the new state and the metrics alive" <| fun () ->
                let x, y = data ()
                let model = OptModel 3
                let state = Nj.init 0L model.Step State.empty (x, y)
                let train = Nj.purify model.Step
                let s1, _ = train state (x, y)
                use scope = torch.NewDisposeScope()
                let before = scope.DisposablesCount
                let s2, metrics = train s1 (x, y)
                // Every entry but the optimizer's fingerprint of its targets is rewritten by a step;
                // besides them only the loss and the norm survive.
                Expect.equal (scope.DisposablesCount - before) (State.count s2 - 1 + 2) "survivors only"
                Expect.isFalse metrics.GradNorm.IsInvalid "metrics alive"
                for k in State.keys s1 do
                    Expect.isFalse s1.[k].IsInvalid (sprintf "input entry %s alive" k)

            testCase "two runs with the same seed are bit-identical" <| fun () ->
                let x, y = data ()
                let run () =
                    let model = OptModel 3
                    let state = Nj.init 3L model.Step State.empty (x, y)
                    runSteps 5 (Nj.purify model.Step) state (x, y) |> List.last |> fst
                expectSameState (run ()) (run ()) "same seed"

            testCase "a restart from a saved state continues like an uninterrupted run" <| fun () ->
                let x, y = data ()
                let model = OptModel 3
                let state = Nj.init 0L model.Step State.empty (x, y)
                let uninterrupted = runSteps 10 (Nj.purify model.Step) state (x, y)
                let saved = fst uninterrupted.[4]
                let restarted = OptModel 3
                let resumed = runSteps 5 (Nj.purify restarted.Step) saved (x, y)
                expectSameState (fst (List.last resumed)) (fst (List.last uninterrupted)) "after 10 steps"
                Expect.equal (count (fst (List.last resumed))) 10L "count"

            testCase "a target that contains the optimizer excludes its state" <| fun () ->
                let x, y = data ()
                let model = OptModel 3
                let state = Nj.init 0L model.Step State.empty (x, y)
                let explicitTargets = runSteps 2 (Nj.purify model.Step) state (x, y) |> List.last |> fst
                let whole = runSteps 2 (Nj.purify (fun (x, y) -> model.StepOn([ Target.Module model ], x, y))) state (x, y) |> List.last |> fst
                expectSameState whole explicitTargets "Target.Module model"
                let msg = throwsWith<ArgumentException> (fun () -> Nj.purify (fun (x, y) -> model.StepOn([ Target.Key "model/opt" ], x, y)) state (x, y) |> ignore)
                mentions msg [ "model/opt"; "optimizer" ]

            testCase "MinimizeAux returns the auxiliary output beside the metrics" <| fun () ->
                let x, y = data ()
                let model = OptModel 3
                let state = Nj.init 0L model.StepAux State.empty (x, y)
                let s1, (metrics, shape) = Nj.purify model.StepAux state (x, y)
                Expect.equal shape [| 64L; 3L |] "aux"
                Expect.equal (count s1) 1L "count"
                let s1', metrics' = Nj.purify model.Step state (x, y)
                expectIdentical metrics.Loss metrics'.Loss "same loss as Minimize"
                expectSameState s1 s1' "same step as Minimize"

            testCase "without init, the optimizer cannot create its state and says so" <| fun () ->
                let x, y = data ()
                let model = OptModel 3
                let paramsOnly = Nj.init 0L model.Loss State.empty (x, y)
                let msg = throwsWith<InvalidOperationException> (fun () -> Nj.purify model.Step paramsOnly (x, y) |> ignore)
                mentions msg [ "model/opt/"; "Nj.init" ]

            testCase "it trains with lazily created state when the call may create" <| fun () ->
                let x, y = data ()
                let model = OptModel 3
                let s1, m1 = Nj.purifyWith creating model.Step State.empty (x, y)
                Expect.equal (count s1) 1L "one step taken"
                let s2, m2 = Nj.purify model.Step s1 (x, y)
                Expect.equal (count s2) 2L "two steps"
                Expect.isLessThan (m2.Loss.item<float32> ()) (m1.Loss.item<float32> ()) "loss falls"

            testCase "targets that change between calls give an error naming the key" <| fun () ->
                let x, y = data ()
                let model = OptModel 3
                let state = Nj.init 0L model.Step State.empty (x, y)
                let train targets = Nj.purify (fun (x, y) -> model.StepOn(targets, x, y))
                let fewer = throwsWith<ArgumentException> (fun () -> train [ Target.Key "model/h1"; Target.Key "model/h2" ] state (x, y) |> ignore)
                mentions fewer [ "model/opt"; "model/bias"; "targets changed" ]
                let partial = Nj.init 0L (fun (x, y) -> model.StepOn([ Target.Key "model/h1" ], x, y)) State.empty (x, y)
                let more = throwsWith<KeyNotFoundException> (fun () -> train model.Targets partial (x, y) |> ignore)
                mentions more [ "model/opt"; "mu/model/bias"; "'model/bias'" ]
                // The caller's states are untouched by the failed calls.
                Expect.equal (count state) 0L "state unchanged"
                Expect.isFalse state.["model/opt/mu/model/h1/w"].IsInvalid "moments alive"

            testCase "integer entries are never parameters: a module target leaves them out, a key target names them" <| fun () ->
                let m = Module("counted")
                let opt = m.Sub("opt", fun () -> Optimizer(Optax.sgd 0.1))
                let f (target: Target) (x: torch.Tensor) =
                    m.Get("steps", fun () -> torch.tensor 0L) |> ignore
                    opt.Minimize((fun (x: torch.Tensor) -> (m.Get("w", fun () -> torch.ones 3L) * x).sum ()), [ target ], x)
                let state = Nj.init 0L (f (Target.Module m)) State.empty (torch.ones 3L)
                Expect.isFalse (State.keys state |> List.exists (fun k -> k.StartsWith "counted/opt/" && k.EndsWith "/steps")) "no optimizer state for the counter"
                let after, _ = Nj.purify (f (Target.Module m)) state (torch.ones 3L)
                expectIdentical after.["counted/w"] (torch.ones 3L * 0.9f) "the weight trained"
                let msg = throwsWith<ArgumentException> (fun () -> Nj.init 0L (f (Target.Key "counted/steps")) State.empty (torch.ones 3L) |> ignore)
                mentions msg [ "counted/steps"; "Int64" ]
        ]
    ]
