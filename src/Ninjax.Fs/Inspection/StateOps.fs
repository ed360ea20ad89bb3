namespace Ninjax

open System
open System.Text.RegularExpressions
open TorchSharp

/// How one key's tensor differs between two states.
type EntryChange =
    /// Same shape and dtype, different values; the largest absolute elementwise difference
    /// (infinity where a NaN appears or disappears).
    | ValuesChanged of MaxAbsChange: float
    /// The shape differs (values are not compared).
    | ShapeChanged of Before: int64[] * After: int64[]
    /// Same shape, different element type (values are not compared).
    | DtypeChanged of Before: torch.ScalarType * After: torch.ScalarType

/// The differences between two states, each list in key order.
type StateDiff =
    {
        /// Keys only in the second state.
        Added: string list
        /// Keys only in the first state.
        Removed: string list
        /// Keys in both whose tensors differ, with how.
        Changed: (string * EntryChange) list
        /// Keys in both with identical shape, dtype and values (NaNs count as equal).
        Unchanged: string list
        /// The largest absolute value change over all ValuesChanged entries; 0 when there are none.
        MaxAbsChange: float
    }

    /// True when the states hold the same keys with identical tensors.
    member d.IsEmpty = d.Added.IsEmpty && d.Removed.IsEmpty && d.Changed.IsEmpty

/// Utilities over whole states: selecting, merging, comparing, moving and casting.
[<RequireQualifiedAccess>]
module StateOps =

    /// The entries at or under any of the given key prefixes.
    let selectPrefixes (prefixes: string seq) (state: State) : State =
        let prefixes = List.ofSeq prefixes
        State.filter (fun k _ -> prefixes |> List.exists (fun p -> Key.isUnder p k)) state

    /// The entries whose key the regular expression matches (anywhere in the key, unless the
    /// expression is anchored with ^ and $).
    let selectRegex (regex: Regex) (state: State) : State =
        if isNull regex then raise (ArgumentNullException("regex"))
        State.filter (fun k _ -> regex.IsMatch k) state

    /// The entries whose key matches a regular expression pattern; ArgumentException naming the
    /// pattern when it is malformed.
    let selectPattern (pattern: string) (state: State) : State =
        let regex =
            try
                Regex(pattern, RegexOptions.CultureInvariant)
            with :? ArgumentException as e ->
                raise (ArgumentException(sprintf "Invalid key pattern '%s': %s" pattern e.Message, "pattern"))
        selectRegex regex state

    /// Both states' entries; ArgumentException listing the keys both hold (use State.merge to let
    /// the right one win instead).
    let mergeDisjoint (left: State) (right: State) : State =
        let shared = State.keys right |> List.filter (fun k -> State.containsKey k left)
        if not shared.IsEmpty then
            raise (
                ArgumentException(
                    sprintf "Cannot merge: both states hold %s. Use %s to let the right one win." (shared |> List.map (sprintf "'%s'") |> String.concat ", ") (Text.code (Caller.fromStack ()) "State.merge" "Merge"),
                    "right"
                )
            )
        State.merge left right

    /// Both states' entries; where both hold a key, <paramref name="resolve"/> key left right decides.
    let mergeWith (resolve: string -> torch.Tensor -> torch.Tensor -> torch.Tensor) (left: State) (right: State) : State =
        State.toSeq right
        |> Seq.fold
            (fun acc (k, r) ->
                match State.tryFind k acc with
                | Some l -> State.add k (resolve k l r) acc
                | None -> State.add k r acc)
            left

    // The largest |a - b| over two tensors of equal shape and dtype, computed in float64 on the
    // device of a; NaN in both at the same place counts as no change, NaN in one as infinite.
    let private maxAbsDifference (a: torch.Tensor) (b: torch.Tensor) : float =
        if a.NumberOfElements = 0L then
            0.0
        else
            use scope = torch.NewDisposeScope()
            let target = if a.is_complex () then torch.complex128 else torch.float64
            let x = a.detach().``to``(target)
            let y = b.detach().``to``(a.device).``to``(target)
            let d = (x - y).abs()
            let bothNaN = x.isnan().logical_and(y.isnan())
            let d = torch.where(bothNaN, torch.zeros_like d, d).nan_to_num(nan = Double.PositiveInfinity)
            d.max().item<float> ()

    // True when two tensors of equal shape and dtype hold the same values (NaNs equal).
    let private sameValues (a: torch.Tensor) (b: torch.Tensor) : bool =
        if a.NumberOfElements = 0L then
            true
        else
            use scope = torch.NewDisposeScope()
            let b = b.detach().``to``(a.device)
            if a.is_floating_point () || a.is_complex () then
                a.detach().allclose(b, 0.0, 0.0, true)
            else
                a.detach().eq(b).all().item<bool> ()

    /// What changed from <paramref name="before"/> to <paramref name="after"/>: keys added,
    /// removed and changed, with the largest absolute change per changed key and overall.
    /// Changes are measured in float64 (complex128 for complex entries), so integer changes
    /// beyond 2^53 are rounded; bools count as 0 and 1.
    let diff (before: State) (after: State) : StateDiff =
        let beforeKeys = Set.ofSeq (State.keys before)
        let afterKeys = Set.ofSeq (State.keys after)
        let shared = Set.intersect beforeKeys afterKeys |> Set.toList
        let changes =
            [ for k in shared do
                  let a = before.[k]
                  let b = after.[k]
                  if a.shape <> b.shape then k, Some(ShapeChanged(a.shape, b.shape))
                  elif a.dtype <> b.dtype then k, Some(DtypeChanged(a.dtype, b.dtype))
                  elif sameValues a b then k, None
                  else k, Some(ValuesChanged(maxAbsDifference a b)) ]
        let changed = changes |> List.choose (fun (k, c) -> c |> Option.map (fun c -> k, c))
        { Added = Set.difference afterKeys beforeKeys |> Set.toList
          Removed = Set.difference beforeKeys afterKeys |> Set.toList
          Changed = changed
          Unchanged = changes |> List.filter (snd >> Option.isNone) |> List.map fst
          MaxAbsChange =
            changed
            |> List.fold
                (fun m (_, c) ->
                    match c with
                    | ValuesChanged d -> max m d
                    | _ -> m)
                0.0 }

    /// Every tensor moved to a device; tensors already there are kept as they are. The originals
    /// are not disposed: the caller still owns them.
    let toDevice (device: torch.Device) (state: State) : State =
        if isNull device then raise (ArgumentNullException("device"))
        State.map
            (fun _ t ->
                if t.device_type = device.``type`` && (device.index < 0 || t.device_index = device.index) then t
                else t.``to`` device)
            state

    /// Floating-point entries cast to <paramref name="dtype"/>; integer, bool and complex entries
    /// are left as they are. ArgumentException when <paramref name="dtype"/> is not a
    /// floating-point type.
    let castFloating (dtype: torch.ScalarType) (state: State) : State =
        if not (torch.is_floating_point dtype) then
            raise (
                ArgumentException(
                    sprintf "%s needs a floating-point dtype (Float16, BFloat16, Float32, Float64); it got %O." (Text.code (Caller.fromStack ()) "castFloating" "CastFloating") dtype,
                    "dtype"
                )
            )
        State.map (fun _ t -> if t.is_floating_point () && t.dtype <> dtype then t.``to``(dtype) else t) state
