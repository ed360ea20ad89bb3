/// Saving a training run and resuming it: the whole state (parameters, optimizer moments and
/// step count) and the number of finished epochs go into one safetensors checkpoint, with the
/// model and the length of the run that the learning-rate schedule spans.
module Digits.Resume

open Ninjax

/// What a checkpoint must match to be resumed: the model's kind and the run's epochs.
type Run = { Model: string; Epochs: int }

/// The run a model kind and an epoch count describe.
let describe (kind: 'Kind) (epochs: int) : Run = { Model = (sprintf "%A" kind).ToLowerInvariant(); Epochs = epochs }

/// Writes the state and the number of finished epochs.
let save (path: string) (state: State) (finished: int) (run: Run) : unit =
    let metadata =
        CheckpointMetadata.ofStep (int64 finished)
        |> CheckpointMetadata.withString "trainer" "digits"
        |> CheckpointMetadata.withString "model" run.Model
        |> CheckpointMetadata.withString "epochs" (string run.Epochs)
    System.IO.Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath path)) |> ignore
    Checkpoint.save path (state, metadata)

/// Reads a state written by save, validated against the freshly initialised one (so a
/// checkpoint of another model is refused with every mismatch listed), and the epoch to continue
/// from. A checkpoint of a run of another length is refused: its schedule would not continue.
let load (path: string) (expected: State) (run: Run) : State * int =
    let state, metadata = Checkpoint.loadInto expected path
    match metadata.Step, metadata.Strings.TryFind "epochs" with
    | Some finished, Some epochs when epochs = string run.Epochs -> state, int finished + 1
    | Some _, Some epochs ->
        invalidArg
            "path"
            (sprintf "Checkpoint '%s' is from a run of %s epochs; its learning-rate schedule spans them. Resume with --epochs %s." path epochs epochs)
    | _ -> invalidArg "path" (sprintf "Checkpoint '%s' does not record the epochs it trained; it was not written by --save." path)

/// Reads the model kind a checkpoint written by save records.
let modelOf (path: string) : string =
    let _, metadata = Checkpoint.load path
    match metadata.Strings.TryFind "trainer", metadata.Strings.TryFind "model" with
    | Some "digits", Some model -> model
    | _ -> invalidArg "path" (sprintf "Checkpoint '%s' was not written by the digits trainer's --save." path)
