module Ninjax.Tests.LayerTests

open System
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

type private T = torch.Tensor

/// A fixed random tensor of a shape, from its own generator.
let private randn (seed: uint64) (shape: int64[]) =
    let g = new torch.Generator(seed)
    torch.randn(shape, generator = g)

/// Runs f with torch's global generator seeded, as TorchSharp's own modules draw from it.
let private withGlobalSeed (seed: int64) (f: unit -> 'T) : 'T =
    use saved = torch.random.get_rng_state ()
    try
        torch.random.manual_seed seed |> ignore
        f ()
    finally
        torch.random.set_rng_state saved

/// Runs a BatchNormalization and a TorchSharp BatchNorm from the same parameters through several
/// training steps and then eval, and checks outputs, gradients (input, scale, offset) and running
/// statistics are bit for bit TorchSharp's.
let private batchNormAgrees (plain: torch.nn.Module<T, T>) (shape: int64[]) (momentum: float) (eps: float) =
    let bn = BatchNormalization(momentum = momentum, eps = eps, name = "bn")
    let channels = shape.[1]
    let x0 = randn 1UL shape
    let initial = Nj.init 0L (fun x -> bn.Forward(x, true)) State.empty x0
    Expect.equal (State.keys initial) [ "bn/mean"; "bn/offset"; "bn/scale"; "bn/var" ] "entries"
    expectIdentical initial.["bn/mean"] (torch.zeros channels) "mean starts at zero"
    expectIdentical initial.["bn/var"] (torch.ones channels) "var starts at one"
    // Parameters away from ones and zeros, so their gradients and use are visible.
    let mutable state =
        initial
        |> State.add "bn/scale" (randn 2UL [| channels |])
        |> State.add "bn/offset" (randn 3UL [| channels |])
    use _ = torch.no_grad ()
    let weight = plain.get_parameter "weight"
    let bias = plain.get_parameter "bias"
    weight.copy_ state.["bn/scale"] |> ignore
    bias.copy_ state.["bn/offset"] |> ignore
    use _ = torch.enable_grad true
    plain.train ()
    for step in 1..3 do
        let x = randn (uint64 (10 + step)) shape
        let r = randn (uint64 (20 + step)) shape
        // Ninjax: gradients with respect to the module's parameters and the input.
        let loss (inputs: T list) = (bn.Forward(inputs.Head, true) * r).sum(), ()
        let next, g = Nj.purify (fun x -> Nj.gradFull loss [ Target.Module bn ] [ x ]) state x
        // TorchSharp: the same through backward.
        plain.zero_grad ()
        let xt = x.detach().requires_grad_(true)
        let y = plain.call xt
        (y * r).sum().backward()
        let _, ny = Nj.purify (fun x -> bn.Forward(x, false)) state x // eval on the state before the step: no change
        ignore ny
        expectIdentical g.Loss ((y * r).sum().detach()) (sprintf "step %d: loss" step)
        expectIdentical g.InputGrads.Head xt.grad (sprintf "step %d: input gradient" step)
        Expect.equal (State.keys g.Grads) [ "bn/offset"; "bn/scale" ] "parameters only"
        expectIdentical g.Grads.["bn/scale"] weight.grad (sprintf "step %d: scale gradient" step)
        expectIdentical g.Grads.["bn/offset"] bias.grad (sprintf "step %d: offset gradient" step)
        expectIdentical next.["bn/mean"] (plain.get_buffer "running_mean") (sprintf "step %d: running mean" step)
        expectIdentical next.["bn/var"] (plain.get_buffer "running_var") (sprintf "step %d: running variance" step)
        Expect.isFalse next.["bn/mean"].requires_grad "statistics carry no graph"
        state <- next
    plain.eval ()
    let x = randn 99UL shape
    let before = state
    let after, y = Nj.purify (fun x -> bn.Forward(x, false)) state x
    expectIdentical y (plain.call x) "eval output"
    Expect.isTrue (obj.ReferenceEquals(after.["bn/mean"], before.["bn/mean"])) "eval writes nothing"
    // Eval under modify=false works; training needs to write.
    let frozen = Options.defaults |> Options.withModify false
    Nj.purifyWith frozen (fun x -> bn.Forward(x, false)) state x |> ignore

[<Tests>]
let denseTests =
    testList "Dense" [
        testCase "every width computes x W + b with its gradients, whichever layout the product uses" <| fun () ->
            // Widths that are not a multiple of 16 go through the weight's transpose where MKL runs
            // its Zen kernels, the others (and all widths elsewhere) through addmm. Both layouts,
            // forced in turn on this thread, must give the plain formula and its gradients.
            for transposed in [ true; false ] do
                NarrowProducts.forced.Value <- Nullable transposed
                use _ = { new IDisposable with member _.Dispose() = NarrowProducts.forced.Value <- Nullable() }
                for units in [ 1; 10; 16; 20; 64 ] do
                    for useBias in [ true; false ] do
                        for shape in [ [| 5L; 7L |]; [| 2L; 3L; 7L |] ] do
                            let dense = Dense(units, useBias, name = "d")
                            let x = randn 3UL shape
                            let state = Nj.init 0L (fun x -> dense.Forward x) State.empty x
                            let loss (x: T) = dense.Forward(x).square().sum()
                            let _, (value, _, grads) = Nj.purify (fun x -> Nj.grad loss [ Target.Module dense ] x) state x
                            let what = sprintf "%d units, bias %b, input %A, narrow outputs transposed %b" units useBias shape transposed
                            let w = state.["d/w"].detach().requires_grad_ true
                            let b = if useBias then state.["d/b"].detach().requires_grad_ true else null
                            let y = if useBias then x.matmul(w) + b else x.matmul w
                            let expected = y.square().sum()
                            expected.backward ()
                            expectClose value (expected.detach ()) 1e-5 (what + ": loss")
                            expectClose grads.["d/w"] w.grad 1e-5 (what + ": weight gradient")
                            Expect.isTrue (grads.["d/w"].is_contiguous ()) (what + ": the weight gradient is contiguous (the fused optimizer reads it directly)")
                            if useBias then expectClose grads.["d/b"] b.grad 1e-5 (what + ": bias gradient")
    ]

[<Tests>]
let batchNormTests =
    testList "BatchNormalization" [
        testCase "matches TorchSharp's BatchNorm1d on [batch, features]" <| fun () ->
            batchNormAgrees (torch.nn.BatchNorm1d(4L)) [| 8L; 4L |] 0.1 1e-5

        testCase "matches TorchSharp's BatchNorm1d on [batch, channels, length] with its own momentum and eps" <| fun () ->
            batchNormAgrees (torch.nn.BatchNorm1d(3L, eps = 1e-3, momentum = 0.3)) [| 6L; 3L; 5L |] 0.3 1e-3

        testCase "matches TorchSharp's BatchNorm2d on [batch, channels, height, width]" <| fun () ->
            batchNormAgrees (torch.nn.BatchNorm2d(3L)) [| 4L; 3L; 5L; 5L |] 0.1 1e-5

        testCase "a key target over the whole module differentiates its running statistics too, which update as without the target" <| fun () ->
            // The statistics are then leaves requiring grad, which the kernel's in-place update
            // of its copies must not touch (libtorch refuses in-place updates of such leaves).
            let bn = BatchNormalization(name = "bn")
            let x = torch.randn(6L, 3L)
            let state = Nj.init 0L (fun x -> bn.Forward(x, true)) State.empty x
            let loss (x: T) = bn.Forward(x, true).square().sum()
            let byKey, g = Nj.purify (fun x -> Nj.grad loss [ Target.Key "bn" ] x) state x
            let byModule, _ = Nj.purify (fun x -> Nj.grad loss [ Target.Module bn ] x) state x
            let _, _, grads = g
            Expect.equal (State.keys grads) [ "bn/mean"; "bn/offset"; "bn/scale"; "bn/var" ] "every entry is a target"
            expectIdentical grads.["bn/mean"] (torch.zeros 3L) "the loss does not depend on the running mean in training"
            for k in [ "bn/mean"; "bn/var" ] do
                expectIdentical byKey.[k] byModule.[k] (k + " updates the same")
                Expect.isFalse byKey.[k].requires_grad (k + " is stored detached")
                Expect.isFalse (identical byKey.[k] state.[k]) (k + " moved")

        testCase "bad inputs and settings name the module and shape" <| fun () ->
            let bn = BatchNormalization(name = "bn")
            let state = Nj.init 0L (fun x -> bn.Forward(x, true)) State.empty (torch.randn(4L, 3L))
            let msg = throwsWith<ArgumentException> (fun () -> Nj.purify (fun x -> bn.Forward(x, true)) state (torch.randn(4L, 5L)) |> ignore)
            mentions msg [ "BatchNormalization(bn)"; "3 channels"; "[4, 5]" ]
            let msg = throwsWith<ArgumentException> (fun () -> Nj.purify (fun x -> bn.Forward(x, true)) state (torch.randn(1L, 3L)) |> ignore)
            mentions msg [ "bn"; "more than one value per channel"; "[1, 3]"; "training = false" ]
            let _, y = Nj.purify (fun x -> bn.Forward(x, false)) state (torch.randn(1L, 3L))
            Expect.equal y.shape [| 1L; 3L |] "a single sample in eval is fine"
            let msg = throwsWith<ArgumentException> (fun () -> Nj.purify (fun x -> bn.Forward(x, true)) state (torch.randn 3L) |> ignore)
            mentions msg [ "[batch, channels, ...]"; "[3]" ]
            let msg = throwsWith<ArgumentOutOfRangeException> (fun () -> BatchNormalization(momentum = 1.5, name = "b") |> ignore)
            mentions msg [ "momentum" ]
            let msg = throwsWith<ArgumentOutOfRangeException> (fun () -> BatchNormalization(eps = 0.0, name = "b") |> ignore)
            mentions msg [ "eps" ]

        testCase "trains inside a model: the optimizer updates scale and offset, the forward pass the statistics" <| fun () ->
            let model = ParameterTests.Mixed()
            let g = new torch.Generator(3UL)
            let x, y = torch.randn([| 8L; 5L |], generator = g), torch.randn([| 8L; 2L |], generator = g)
            let s0 = Nj.init 0L model.Train State.empty (x, y)
            let train = Nj.purifyWith (Options.seeded 0L |> Options.donating) model.Train
            let mutable s = copyState s0
            let losses = ResizeArray()
            for _ in 1..30 do
                let next, loss = train s (x, y)
                losses.Add(loss.item<float32> ())
                s <- next
            Expect.isLessThan losses.[losses.Count - 1] (losses.[0] * 0.5f) "the loss falls"
            Expect.isFalse (identical s.["model/norm/var"] s0.["model/norm/var"]) "running variance moved"
            Expect.isTrue (State.containsKey "model/opt/mu/model/norm/scale" s) "the optimizer holds moments for the scale"
            Expect.isFalse (State.containsKey "model/opt/mu/model/norm/mean" s) "and none for the statistics"
    ]

[<Tests>]
let embedTests =
    testList "Embed" [
        testCase "matches TorchSharp's Embedding: outputs and table gradients, with and without padding" <| fun () ->
            for padding in [ Nullable(); Nullable 2; Nullable -1 ] do
                let embed = Embed(7, 4, paddingIndex = padding, name = "emb")
                let indices = torch.tensor([| 0L; 2L; 6L; 2L; 3L; 2L; 1L; 6L |]).reshape(2L, 4L)
                let state = Nj.init 0L embed.Forward State.empty indices
                Expect.equal (State.keys state) [ "emb/embedding" ] "one entry"
                let table = state.["emb/embedding"]
                Expect.equal table.shape [| 7L; 4L |] "table shape"
                let pad = if padding.HasValue then Some(if padding.Value < 0 then padding.Value + 7 else padding.Value) else None
                match pad with
                | Some p ->
                    expectIdentical table.[int64 p] (torch.zeros 4L) "the padding row starts at zero"
                    Expect.equal embed.PaddingIndex (Nullable p) "the padding index, made non-negative"
                | None -> ()
                let r = randn 5UL [| 2L; 4L; 4L |]
                let _, (loss, _, grads) = Nj.purify (fun i -> Nj.grad (fun i -> (embed.Forward i * r).sum()) [ Target.Module embed ] i) state indices
                let plain =
                    torch.nn.Embedding_from_pretrained(table.clone (), freeze = false, padding_idx = (if pad.IsSome then Nullable(int64 pad.Value) else Nullable()))
                let y = plain.call indices
                let _, ny = Nj.purify embed.Forward state indices
                expectIdentical ny y "outputs"
                (y * r).sum().backward()
                expectIdentical loss ((y * r).sum().detach()) "loss"
                expectIdentical grads.["emb/embedding"] plain.weight.grad "table gradient"
                match pad with
                | Some p -> expectIdentical grads.["emb/embedding"].[int64 p] (torch.zeros 4L) "no gradient for the padding row"
                | None -> ()

        testCase "the table is drawn from the seed: normal(0, 1), reproducible" <| fun () ->
            let embed = Embed(1000, 16, name = "emb")
            let i = torch.tensor [| 0L |]
            let a = Nj.init 3L embed.Forward State.empty i
            let b = Nj.init 3L embed.Forward State.empty i
            let c = Nj.init 4L embed.Forward State.empty i
            expectIdentical a.["emb/embedding"] b.["emb/embedding"] "same seed, same table"
            Expect.isFalse (identical a.["emb/embedding"] c.["emb/embedding"]) "another seed, another table"
            let t = a.["emb/embedding"]
            Expect.isLessThan (abs (t.mean().item<float32> ())) 0.02f "mean about 0"
            Expect.isLessThan (abs (t.std().item<float32> () - 1.0f)) 0.02f "standard deviation about 1"

        testCase "int32 indices and any shape; bad indices and settings are named" <| fun () ->
            let embed = Embed(5, 3, name = "emb")
            let state = Nj.init 0L embed.Forward State.empty (torch.tensor [| 0L |])
            let _, y = Nj.purify embed.Forward state (torch.tensor([| 1; 4; 0 |], dtype = torch.int32).reshape(1L, 1L, 3L))
            Expect.equal y.shape [| 1L; 1L; 3L; 3L |] "indices shape + [features]"
            expectIdentical y.[0L, 0L, 1L] state.["emb/embedding"].[4L] "row 4"
            let msg = throwsWith<ArgumentException> (fun () -> Nj.purify embed.Forward state (torch.tensor [| 1L; 5L |]) |> ignore)
            mentions msg [ "Embed(emb)"; "5 rows"; "from 1 to 5"; "[0, 5)" ]
            let msg = throwsWith<ArgumentException> (fun () -> Nj.purify embed.Forward state (torch.tensor [| -1L |]) |> ignore)
            mentions msg [ "from -1 to -1" ]
            let msg = throwsWith<ArgumentException> (fun () -> Nj.purify embed.Forward state (torch.tensor [| 1.0f |]) |> ignore)
            mentions msg [ "Int64 or Int32"; "Float32"; "[1]" ]
            let msg = throwsWith<ArgumentOutOfRangeException> (fun () -> Embed(5, 3, paddingIndex = 5, name = "e") |> ignore)
            mentions msg [ "[-5, 5)" ]
            throwsWith<ArgumentOutOfRangeException> (fun () -> Embed(0, 3, name = "e") |> ignore) |> ignore
            throwsWith<ArgumentOutOfRangeException> (fun () -> Embed(3, 0, name = "e") |> ignore) |> ignore
    ]

[<Tests>]
let dropoutTests =
    testList "dropout" [
        // Sequenced: it seeds torch's global generator, which TorchSharp's Dropout draws from.
        testSequenced <| testCase "matches TorchSharp's Dropout drawing from the same generator: outputs and gradients" (fun () ->
            let x = randn 1UL [| 6L; 50L |]
            let r = randn 2UL [| 6L; 50L |]
            for rate in [ 0.1; 0.5; 0.8 ] do
                let opts = Options.seeded 11L
                // The generator the call draws first, as Nj.rng hands it out.
                let _, seed = Nj.purifyWith opts (fun () -> Nj.rng().initial_seed ()) State.empty ()
                let _, g = Nj.purifyWith opts (fun x -> Nj.gradFull (fun xs -> (Ops.dropout rate true xs.Head * r).sum(), ()) [] [ x ]) State.empty x
                let _, y = Nj.purifyWith opts (fun x -> Ops.dropout rate true x) State.empty x
                let plain = torch.nn.Dropout(rate)
                plain.train ()
                let xt = x.detach().requires_grad_(true)
                let yt = withGlobalSeed seed (fun () -> plain.call xt)
                (yt * r).sum().backward()
                expectIdentical y (yt.detach()) (sprintf "rate %g: outputs" rate)
                expectIdentical g.InputGrads.Head xt.grad (sprintf "rate %g: gradients" rate)
                let dropped = y.eq(torch.tensor 0.0f).to_type(torch.float32).mean().item<float32> ()
                Expect.isLessThan (abs (float dropped - rate)) 0.1 (sprintf "rate %g: about that fraction dropped" rate))

        testCase "eval, rate 0 and empty inputs pass the input through; rate 1 zeroes" <| fun () ->
            let x = randn 1UL [| 3L; 4L |]
            let _, (a, b, c) =
                Nj.purify (fun x -> Ops.dropout 0.5 false x, Ops.dropout 0.0 true x, Ops.dropout 0.5 true (torch.zeros(0L, 4L))) State.empty x
            Expect.isTrue (obj.ReferenceEquals(a, x)) "eval: the input itself, no seed needed"
            Expect.isTrue (obj.ReferenceEquals(b, x)) "rate 0: the input itself"
            Expect.equal c.shape [| 0L; 4L |] "empty"
            let _, z = Nj.purifyWith (Options.seeded 0L) (fun x -> Ops.dropout 1.0 true x) State.empty x
            expectIdentical z (torch.zeros(3L, 4L)) "rate 1: zeros"

        testCase "the call's seed decides the mask: same seed same mask, each draw its own" <| fun () ->
            let x = torch.ones(1000L)
            let run seed = snd (Nj.purifyWith (Options.seeded seed) (fun x -> Ops.dropout 0.5 true x, Ops.dropout 0.5 true x) State.empty x)
            let a1, a2 = run 1L
            let b1, _ = run 1L
            let c1, _ = run 2L
            expectIdentical a1 b1 "reproducible"
            Expect.isFalse (identical a1 a2) "two draws in one call differ"
            Expect.isFalse (identical a1 c1) "another seed, another mask"
            let kept = a1.gt(torch.tensor 0.0f)
            expectIdentical (a1.masked_select kept) (full [| kept.sum().ToInt64() |] 2.0f) "kept values scaled by 1 / (1 - rate)"

        testCase "a bad rate or a missing seed is named" <| fun () ->
            let x = torch.ones(3L)
            let msg = throwsWith<ArgumentOutOfRangeException> (fun () -> Nj.purify (fun x -> Ops.dropout 1.5 true x) State.empty x |> ignore)
            mentions msg [ "rate"; "[0, 1]" ]
            throwsWith<ArgumentOutOfRangeException> (fun () -> Nj.purify (fun x -> Ops.dropout Double.NaN true x) State.empty x |> ignore) |> ignore
            let msg = throwsWith<InvalidOperationException> (fun () -> Nj.purify (fun x -> Ops.dropout 0.5 true x) State.empty x |> ignore)
            mentions msg [ "seed" ]
    ]

/// TorchSharp's max_pool2d and its gradient for an upstream gradient r.
let private torchPool (size: int64) (x: T) (r: T) =
    let xt = x.detach().requires_grad_(true)
    let y = torch.nn.functional.max_pool2d(xt, [| size; size |])
    (y * r).sum().backward()
    y.detach(), xt.grad

[<Tests>]
let maxPoolTests =
    testList "maxPool2d" [
        testCase "matches TorchSharp's max_pool2d bit for bit: values and gradients, ties, NaN, sizes that do not divide, float64" <| fun () ->
            // Ties everywhere (rounded, then rectified: most windows hold several equal maxima),
            // a NaN in some windows, heights and widths the window does not divide; 8 channels or
            // more take the channels-last indices, fewer max_pool2d itself.
            let cases =
                [ 1UL, [| 4L; 16L; 8L; 8L |], 2, torch.float32
                  2UL, [| 3L; 9L; 7L; 9L |], 2, torch.float32
                  3UL, [| 2L; 8L; 9L; 6L |], 3, torch.float32
                  4UL, [| 2L; 1L; 6L; 6L |], 2, torch.float32
                  5UL, [| 2L; 3L; 6L; 5L |], 2, torch.float32
                  6UL, [| 2L; 12L; 6L; 5L |], 1, torch.float32
                  7UL, [| 2L; 8L; 6L; 6L |], 2, torch.float64 ]
            for seed, shape, size, dtype in cases do
                let x = (randn seed shape * 2.0).round().relu().to_type dtype
                let flat = x.view(-1L)
                flat.[3L] <- torch.tensor (nan, dtype = dtype)
                flat.[4L] <- torch.tensor (nan, dtype = dtype)
                flat.[flat.size 0 - 1L] <- torch.tensor (nan, dtype = dtype)
                let r = (randn (seed + 100UL) (torch.nn.functional.max_pool2d(x, [| int64 size; int64 size |]).shape)).to_type dtype
                let expected, expectedGrad = torchPool (int64 size) x r
                let _, g = Nj.purify (fun x -> Nj.gradFull (fun xs -> (Ops.maxPool2d size xs.Head * r).sum(), ()) [] [ x ]) State.empty x
                let _, y = Nj.purify (fun x -> Ops.maxPool2d size x) State.empty x
                let label = sprintf "shape %A, window %d, %O" shape size dtype
                Expect.equal y.shape expected.shape (label + ": shape")
                Expect.isTrue (y.is_contiguous ()) (label + ": a contiguous result")
                Expect.isTrue (torch.isnan(y).eq(torch.isnan expected).all().ToBoolean()) (label + ": NaN where max_pool2d has NaN")
                expectIdentical (torch.nan_to_num y) (torch.nan_to_num expected) (label + ": values")
                expectIdentical (torch.nan_to_num g.InputGrads.Head) (torch.nan_to_num expectedGrad) (label + ": gradients reach the same elements")

        testCase "a channels-last or strided input pools as max_pool2d does" <| fun () ->
            let x = (randn 7UL [| 2L; 10L; 4L; 8L |] * 2.0).round()
            let channelsLast = x.permute(0L, 2L, 3L, 1L).contiguous().permute(0L, 3L, 1L, 2L)
            let strided = x.transpose(2L, 3L)
            for input, label in [ channelsLast, "channels-last"; strided, "transposed" ] do
                let r = randn 8UL (torch.nn.functional.max_pool2d(input, [| 2L; 2L |]).shape)
                let expected, expectedGrad = torchPool 2L input r
                let _, g = Nj.purify (fun x -> Nj.gradFull (fun xs -> (Ops.maxPool2d 2 xs.Head * r).sum(), ()) [] [ x ]) State.empty input
                expectIdentical (snd (Nj.purify (fun x -> Ops.maxPool2d 2 x) State.empty input)) expected (label + ": values")
                expectIdentical g.InputGrads.Head expectedGrad (label + ": gradients")

        testCase "a bad window or shape is named, in the caller's language" <| fun () ->
            let x = torch.ones(2L, 3L, 4L, 4L)
            let msg = throwsWith<ArgumentOutOfRangeException> (fun () -> Ops.maxPool2d 0 x |> ignore)
            mentions msg [ "window" ]
            let msg = throwsWith<ArgumentException> (fun () -> Ops.maxPool2d 2 (torch.ones(3L, 4L, 4L)) |> ignore)
            mentions msg [ "Ops.maxPool2d"; "[batch, channels, height, width]"; "[3, 4, 4]" ]
            let msg = throwsWith<ArgumentException> (fun () -> Ops.maxPool2d 5 x |> ignore)
            mentions msg [ "Ops.maxPool2d(5)"; "5 x 5"; "[2, 3, 4, 4]"; "smaller window" ]
            throwsWith<ArgumentNullException> (fun () -> Ops.maxPool2d 2 null |> ignore) |> ignore
            let _, empty = Nj.purify (fun x -> Ops.maxPool2d 2 x) State.empty (torch.ones(0L, 3L, 4L, 4L))
            Expect.equal empty.shape [| 0L; 3L; 2L; 2L |] "an empty batch pools to an empty batch"
    ]
