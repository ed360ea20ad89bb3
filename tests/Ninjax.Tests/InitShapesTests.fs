module Ninjax.Tests.InitShapesTests

open System
open System.IO
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers
open Ninjax.Tests.ScenarioTests

/// A model that counts how often its loss runs and whether autograd was recording.
type Counted(name: string) as this =
    inherit Module(name)
    let h = this.Sub("h", fun () -> Dense 8)
    let opt = this.Sub("opt", fun () -> Optimizer(Optax.adam 1e-3))
    member val Runs = 0 with get, set
    member val Recording = false with get, set
    member this.Loss(x: torch.Tensor) =
        this.Runs <- this.Runs + 1
        this.Recording <- this.Recording || torch.is_grad_enabled ()
        (torch.nn.functional.relu (h.Forward x)).square().mean()
    member this.Train(x: torch.Tensor) = opt.Minimize(this.Loss, [ Target.Module h ], x).Loss

let private spec (shape: int64[]) = torch.empty(shape, device = torch.META)

let private tempFile () = Path.Combine(Path.GetTempPath(), sprintf "ninjax-shapes-%s.safetensors" (Guid.NewGuid().ToString "N"))

[<Tests>]
let tests =
    testList "init shapes" [
        testCase "initShapes gives init's keys, shapes and dtypes on the meta device" <| fun () ->
            let model = MyModel 3
            let x, y = torch.ones(64L, 32L), torch.ones(64L, 3L)
            let real = Nj.init 0L model.Train State.empty (x, y)
            let shapes = Nj.initShapes 0L model.Train State.empty (spec [| 1L; 32L |], spec [| 1L; 3L |])
            Expect.equal (State.keys shapes) (State.keys real) "the same keys"
            for k in State.keys real do
                Expect.equal shapes.[k].shape real.[k].shape (sprintf "shape of %s" k)
                Expect.equal shapes.[k].dtype real.[k].dtype (sprintf "dtype of %s" k)
                Expect.equal shapes.[k].device_type DeviceType.META (sprintf "%s holds no values" k)

        testCase "the function runs once, without gradients" <| fun () ->
            let m = Counted "c"
            Nj.initShapes 0L m.Train State.empty (spec [| 1L; 4L |]) |> ignore
            Expect.equal m.Runs 1 "one run (init runs the loss twice: the prerun and the differentiated run)"
            Expect.isFalse m.Recording "autograd never recorded"
            m.Runs <- 0
            Nj.init 0L m.Train State.empty (torch.ones(1L, 4L)) |> ignore
            Expect.equal m.Runs 2 "init for comparison"

        testCase "Checkpoint.loadInto takes the shapes as the expected structure" <| fun () ->
            let model = MyModel 3
            let x, y = torch.ones(8L, 32L), torch.ones(8L, 3L)
            let state = Nj.init 0L model.Train State.empty (x, y)
            let trained, _ = Nj.purify model.Train state (x, y)
            let path = tempFile ()
            try
                Checkpoint.save path (trained, CheckpointMetadata.ofStep 1L)
                let shapes = Nj.initShapes 0L model.Train State.empty (spec [| 1L; 32L |], spec [| 1L; 3L |])
                let loaded, meta = Checkpoint.loadInto shapes path
                Expect.equal meta.Step (Some 1L) "metadata"
                expectSameState loaded trained "the trained values, on the CPU"
                Expect.equal loaded.["model/h1/w"].device_type DeviceType.CPU "loaded to the CPU"
                // A model of another size does not fit, and every difference is listed.
                let other = Nj.initShapes 0L (MyModel 4).Train State.empty (spec [| 1L; 32L |], spec [| 1L; 4L |])
                let e = Expect.throwsT<CheckpointMismatchException> (fun () -> Checkpoint.loadInto other path |> ignore)
                ignore e
                Expect.isNonEmpty (Checkpoint.check other path) "check lists the mismatches"
            finally
                File.Delete path

        testCase "shapes cannot be saved, and summaries read them" <| fun () ->
            let model = MyModel 3
            let shapes = Nj.initShapes 0L model.Train State.empty (spec [| 1L; 32L |], spec [| 1L; 3L |])
            let path = tempFile ()
            let msg = throwsWith<ArgumentException> (fun () -> Checkpoint.save path (shapes, CheckpointMetadata.empty))
            mentions msg [ "shapes only"; "Nj.initShapes"; "model/" ]
            Expect.isFalse (File.Exists path) "nothing written"
            let real = Nj.init 0L model.Train State.empty (torch.ones(1L, 32L), torch.ones(1L, 3L))
            Expect.equal (Summary.render shapes) (Summary.render real) "the summary of the shapes is the summary of the state"

        testCase "real inputs work too, and the caller's state and inputs are left alone" <| fun () ->
            let m = Counted "r"
            let start = Nj.init 0L m.Train State.empty (torch.ones(1L, 4L))
            let copy = copyState start
            let x = torch.ones(2L, 4L)
            let shapes = Nj.initShapes 0L m.Train start x
            Expect.equal (State.keys shapes) (State.keys start) "nothing new to create"
            expectSameState start copy "the input state is unchanged"
            Expect.isFalse x.IsInvalid "the input survives"
            Expect.isTrue (State.toSeq shapes |> Seq.forall (fun (_, t) -> t.device_type = DeviceType.META)) "existing entries as shapes too"
    ]
