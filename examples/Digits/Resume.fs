/// Saving a training run and resuming it: the whole state (parameters, optimizer moments and
/// step count) and the number of finished epochs go into one safetensors checkpoint.
module Digits.Resume

open Ninjax

/// Writes the state and the number of finished epochs.
let save (path: string) (state: State) (epochs: int) : unit =
    Checkpoint.save path (state, CheckpointMetadata.ofStep (int64 epochs) |> CheckpointMetadata.withString "trainer" "digits")

/// Reads a state written by save, validated against the freshly initialised one (so a
/// checkpoint of another model is refused with every mismatch listed), and the epoch to continue from.
let load (path: string) (expected: State) : State * int =
    let state, metadata = Checkpoint.loadInto expected path
    match metadata.Step with
    | Some epochs -> state, int epochs + 1
    | None -> invalidArg "path" (sprintf "Checkpoint '%s' does not record how many epochs were trained; it was not written by --save." path)
