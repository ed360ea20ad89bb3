namespace Ninjax

open System
open System.Globalization
open System.Text
open TorchSharp

/// Sizes added up over some entries of a state.
type SizeTotals =
    {
        /// How many entries.
        Entries: int
        /// How many elements they hold together, whatever their dtype and kind.
        Elements: int64
        /// How many of those elements are trainable parameters (EntryKind.Parameter). Zero in a
        /// summary made without the model (Summary.rows state), which cannot tell.
        Parameters: int64
        /// How many bytes their elements take.
        Bytes: int64
    }

/// One row of a state summary, in tree order: a module's row comes before the rows under it.
type SummaryRow =
    /// A module path (a key prefix such as <c>model/h1</c>) with the totals of everything under it.
    | ModuleRow of path: string * depth: int * totals: SizeTotals
    /// One entry with its shape, dtype, kind and size.
    | EntryRow of key: string * depth: int * shape: int64[] * dtype: torch.ScalarType * kind: EntryKind * totals: SizeTotals

    /// The full key or module path.
    member r.Path =
        match r with
        | ModuleRow(p, _, _) -> p
        | EntryRow(k, _, _, _, _, _) -> k

    /// How deep the row sits in the tree: 0 for top-level modules and entries.
    member r.Depth =
        match r with
        | ModuleRow(_, d, _) -> d
        | EntryRow(_, d, _, _, _, _) -> d

    /// The totals of the row (one entry for an entry row).
    member r.Totals =
        match r with
        | ModuleRow(_, _, t) -> t
        | EntryRow(_, _, _, _, _, t) -> t

    /// The entry's shape; null for a module row.
    member r.Shape: int64[] =
        match r with
        | ModuleRow _ -> null
        | EntryRow(_, _, shape, _, _, _) -> shape

    /// The entry's dtype; null for a module row.
    member r.DType: Nullable<torch.ScalarType> =
        match r with
        | ModuleRow _ -> Nullable()
        | EntryRow(_, _, _, dtype, _, _) -> Nullable dtype

    /// The entry's kind (parameter, buffer, optimizer state, ...); null for a module row.
    member r.Kind: Nullable<EntryKind> =
        match r with
        | ModuleRow _ -> Nullable()
        | EntryRow(_, _, _, _, kind, _) -> Nullable kind

/// A table of what a state holds, grouped by module path, with sizes per entry, per module and
/// overall (like Flax's tabulate or Keras's summary). Given the model (<c>rowsOf</c>,
/// <c>totalsOf</c>, <c>renderOf</c>) it counts trainable parameters apart from other state
/// (buffers, optimizer state, counters), as the modules declare them; the plain forms see only
/// the state, so they count elements and leave every entry Unclassified.
[<RequireQualifiedAccess>]
module Summary =

    /// The totals of no entries.
    let zero = { Entries = 0; Elements = 0L; Parameters = 0L; Bytes = 0L }

    let private add (a: SizeTotals) (b: SizeTotals) =
        { Entries = a.Entries + b.Entries
          Elements = a.Elements + b.Elements
          Parameters = a.Parameters + b.Parameters
          Bytes = a.Bytes + b.Bytes }

    let private ofEntry (kind: EntryKind) (t: torch.Tensor) : SizeTotals =
        let n = t.NumberOfElements
        { Entries = 1; Elements = n; Parameters = (if kind = EntryKind.Parameter then n else 0L); Bytes = n * t.ElementSize }

    /// The totals of one tensor, unclassified (Parameters 0).
    let ofTensor (t: torch.Tensor) : SizeTotals = ofEntry EntryKind.Unclassified t

    /// Every entry with its kind: as the model declares for entries under its path, Other for
    /// the rest; Unclassified for all without a model.
    let private classify (model: Module) (state: State) : (string * torch.Tensor * EntryKind) list =
        let kinds = if isNull model then null else model.EntryKinds state
        [ for k, t in State.toSeq state ->
              let kind =
                  if isNull kinds then EntryKind.Unclassified
                  else
                      match kinds.TryGetValue k with
                      | true, kind -> kind
                      | _ -> EntryKind.Other
              k, t, kind ]

    let private totalsOfEntries (entries: (string * torch.Tensor * EntryKind) list) =
        entries |> List.fold (fun acc (_, t, kind) -> add acc (ofEntry kind t)) zero

    let private rowsOfEntries (entries: (string * torch.Tensor * EntryKind) list) : SummaryRow list =
        // Keys are sorted ordinally, so every module's entries are contiguous; walk them and open a
        // module row the first time each prefix is seen.
        let moduleTotals =
            entries
            |> List.collect (fun (k, t, kind) ->
                let segments = k.Split '/'
                [ for i in 1 .. segments.Length - 1 -> String.Join("/", segments, 0, i), ofEntry kind t ])
            |> List.groupBy fst
            |> List.map (fun (p, xs) -> p, xs |> List.map snd |> List.fold add zero)
            |> Map.ofList
        let opened = Collections.Generic.HashSet<string>()
        [ for k, t, kind in entries do
              let segments = k.Split '/'
              for i in 1 .. segments.Length - 1 do
                  let prefix = String.Join("/", segments, 0, i)
                  if opened.Add prefix then
                      ModuleRow(prefix, i - 1, moduleTotals.[prefix])
              EntryRow(k, segments.Length - 1, t.shape, t.dtype, kind, ofEntry kind t) ]

    /// The totals over a whole state, unclassified (Parameters 0; see totalsOf).
    let totals (state: State) : SizeTotals = totalsOfEntries (classify null state)

    /// The totals over a whole state, with the model's trainable parameters counted apart.
    let totalsOf (model: Module) (state: State) : SizeTotals =
        if isNull model then raise (ArgumentNullException("model"))
        totalsOfEntries (classify model state)

    /// The rows of the summary, unclassified: for every module path a ModuleRow with the totals
    /// under it, followed by the rows under it, in key order.
    let rows (state: State) : SummaryRow list = rowsOfEntries (classify null state)

    /// The rows of the summary with each entry's kind as the model declares it (entries outside
    /// the model's path are Other) and trainable parameters counted apart.
    let rowsOf (model: Module) (state: State) : SummaryRow list =
        if isNull model then raise (ArgumentNullException("model"))
        rowsOfEntries (classify model state)

    let private number (n: int64) = n.ToString("N0", CultureInfo.InvariantCulture)

    /// A byte count in B, KiB, MiB or GiB.
    let formatBytes (bytes: int64) : string =
        let units = [| "B"; "KiB"; "MiB"; "GiB"; "TiB" |]
        let mutable value = float bytes
        let mutable unit = 0
        while value >= 1024.0 && unit < units.Length - 1 do
            value <- value / 1024.0
            unit <- unit + 1
        if unit = 0 then sprintf "%d B" bytes
        else value.ToString("0.0", CultureInfo.InvariantCulture) + " " + units.[unit]

    /// The kind as the table shows it.
    let private kindText (kind: EntryKind) =
        match kind with
        | EntryKind.Parameter -> "parameter"
        | EntryKind.Buffer -> "buffer"
        | EntryKind.OptimizerState -> "optimizer"
        | EntryKind.Other -> "other"
        | _ -> ""

    let private table (header: string[]) (numeric: int) (cells: string[] list) (footer: string[]) (last: string) =
        let table = header :: cells @ [ footer ]
        let widths = Array.init header.Length (fun c -> table |> List.map (fun row -> row.[c].Length) |> List.max)
        let line (row: string[]) =
            row
            |> Array.mapi (fun c s -> if c >= numeric then s.PadLeft widths.[c] else s.PadRight widths.[c])
            |> String.concat "  "
            |> fun s -> s.TrimEnd()
        let rule = String('-', (Array.sum widths) + 2 * (widths.Length - 1))
        let sb = StringBuilder()
        sb.AppendLine(line header).AppendLine(rule) |> ignore
        for row in cells do
            sb.AppendLine(line row) |> ignore
        sb.AppendLine(rule).AppendLine(line footer).Append(last: string).ToString()

    let private name (r: SummaryRow) = String(' ', 2 * r.Depth) + (r.Path.Split '/' |> Array.last)

    let private shapeText (shape: int64[]) = "[" + String.Join(", ", shape) + "]"

    let private entriesText (n: int) = sprintf "%d entr%s" n (if n = 1 then "y" else "ies")

    /// The summary as a plain-text table without the model: one line per module and entry
    /// (indented by depth) with shape, dtype, element count and bytes, and a total line. It
    /// cannot tell parameters from other state; renderOf can.
    let render (state: State) : string =
        let rows = rows state
        let cells =
            [ for r in rows ->
                  match r with
                  | ModuleRow(_, _, t) -> [| name r; ""; ""; number t.Elements; number t.Bytes |]
                  | EntryRow(_, _, shape, dtype, _, t) -> [| name r; shapeText shape; string dtype; number t.Elements; number t.Bytes |] ]
        let all = totals state
        table
            [| "Name"; "Shape"; "Dtype"; "Elements"; "Bytes" |]
            3
            cells
            [| "Total"; ""; ""; number all.Elements; number all.Bytes |]
            (sprintf "%s, %s elements, %s (pass the model, Summary.renderOf model state, to count trainable parameters apart)" (entriesText all.Entries) (number all.Elements) (formatBytes all.Bytes))

    /// The summary as a plain-text table, with each entry's kind as the model declares it and
    /// trainable parameters counted apart from other state (buffers, optimizer state, counters)
    /// per entry, per module and overall.
    let renderOf (model: Module) (state: State) : string =
        let rows = rowsOf model state
        let other (t: SizeTotals) = t.Elements - t.Parameters
        let cells =
            [ for r in rows ->
                  match r with
                  | ModuleRow(_, _, t) -> [| name r; ""; ""; ""; number t.Parameters; number (other t); number t.Bytes |]
                  | EntryRow(_, _, shape, dtype, kind, t) ->
                      let isParameter = kind = EntryKind.Parameter
                      [| name r; shapeText shape; string dtype; kindText kind
                         (if isParameter then number t.Parameters else "")
                         (if isParameter then "" else number (other t))
                         number t.Bytes |] ]
        let all = totalsOf model state
        let entries = classify model state
        let elementsOf kind = entries |> List.sumBy (fun (_, t, k) -> if k = kind then t.NumberOfElements else 0L)
        let bytesOf predicate = entries |> List.sumBy (fun (_, t, k) -> if predicate k then t.NumberOfElements * t.ElementSize else 0L)
        let last =
            sprintf
                "%s: %s trainable parameters (%s); %s other values (%s): %s in buffers, %s optimizer state, %s other"
                (entriesText all.Entries)
                (number all.Parameters)
                (formatBytes (bytesOf (fun k -> k = EntryKind.Parameter)))
                (number (other all))
                (formatBytes (bytesOf (fun k -> k <> EntryKind.Parameter)))
                (number (elementsOf EntryKind.Buffer))
                (number (elementsOf EntryKind.OptimizerState))
                (number (elementsOf EntryKind.Other))
        table
            [| "Name"; "Shape"; "Dtype"; "Kind"; "Parameters"; "Other"; "Bytes" |]
            4
            cells
            [| "Total"; ""; ""; ""; number all.Parameters; number (other all); number all.Bytes |]
            last
