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
        /// How many elements (parameters) they hold together, whatever their dtype.
        Parameters: int64
        /// How many bytes their elements take.
        Bytes: int64
    }

/// One row of a state summary, in tree order: a module's row comes before the rows under it.
type SummaryRow =
    /// A module path (a key prefix such as <c>model/h1</c>) with the totals of everything under it.
    | ModuleRow of path: string * depth: int * totals: SizeTotals
    /// One entry with its shape, dtype and size.
    | EntryRow of key: string * depth: int * shape: int64[] * dtype: torch.ScalarType * totals: SizeTotals

    /// The full key or module path.
    member r.Path =
        match r with
        | ModuleRow(p, _, _) -> p
        | EntryRow(k, _, _, _, _) -> k

    /// How deep the row sits in the tree: 0 for top-level modules and entries.
    member r.Depth =
        match r with
        | ModuleRow(_, d, _) -> d
        | EntryRow(_, d, _, _, _) -> d

    /// The totals of the row (one entry for an entry row).
    member r.Totals =
        match r with
        | ModuleRow(_, _, t) -> t
        | EntryRow(_, _, _, _, t) -> t

/// A table of what a state holds, grouped by module path, with parameter counts and bytes per
/// entry, per module and overall (like Flax's tabulate or Keras's summary).
[<RequireQualifiedAccess>]
module Summary =

    /// The totals of no entries.
    let zero = { Entries = 0; Parameters = 0L; Bytes = 0L }

    let private add (a: SizeTotals) (b: SizeTotals) =
        { Entries = a.Entries + b.Entries; Parameters = a.Parameters + b.Parameters; Bytes = a.Bytes + b.Bytes }

    /// The totals of one tensor.
    let ofTensor (t: torch.Tensor) : SizeTotals =
        { Entries = 1; Parameters = t.NumberOfElements; Bytes = t.NumberOfElements * t.ElementSize }

    /// The totals over a whole state.
    let totals (state: State) : SizeTotals =
        State.toSeq state |> Seq.fold (fun acc (_, t) -> add acc (ofTensor t)) zero

    /// The rows of the summary: for every module path a ModuleRow with the totals under it,
    /// followed by the rows under it, in key order.
    let rows (state: State) : SummaryRow list =
        // Keys are sorted ordinally, so every module's entries are contiguous; walk them and open a
        // module row the first time each prefix is seen.
        let entries = State.toSeq state |> List.ofSeq
        let moduleTotals =
            entries
            |> List.collect (fun (k, t) ->
                let segments = k.Split '/'
                [ for i in 1 .. segments.Length - 1 -> String.Join("/", segments, 0, i), ofTensor t ])
            |> List.groupBy fst
            |> List.map (fun (p, xs) -> p, xs |> List.map snd |> List.fold add zero)
            |> Map.ofList
        let opened = Collections.Generic.HashSet<string>()
        [ for k, t in entries do
              let segments = k.Split '/'
              for i in 1 .. segments.Length - 1 do
                  let prefix = String.Join("/", segments, 0, i)
                  if opened.Add prefix then
                      ModuleRow(prefix, i - 1, moduleTotals.[prefix])
              EntryRow(k, segments.Length - 1, t.shape, t.dtype, ofTensor t) ]

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

    /// The summary as a plain-text table: one line per module and entry (indented by depth), with
    /// shape, dtype, parameters and bytes, and a total line.
    let render (state: State) : string =
        let rows = rows state
        let cells =
            [ for r in rows ->
                  let name = String(' ', 2 * r.Depth) + (r.Path.Split '/' |> Array.last)
                  match r with
                  | ModuleRow(_, _, t) -> [| name; ""; ""; number t.Parameters; number t.Bytes |]
                  | EntryRow(_, _, shape, dtype, t) ->
                      [| name; "[" + String.Join(", ", shape) + "]"; string dtype; number t.Parameters; number t.Bytes |] ]
        let all = totals state
        let header = [| "Name"; "Shape"; "Dtype"; "Parameters"; "Bytes" |]
        let footer = [| "Total"; ""; ""; number all.Parameters; number all.Bytes |]
        let table = header :: cells @ [ footer ]
        let widths = Array.init header.Length (fun c -> table |> List.map (fun row -> row.[c].Length) |> List.max)
        let line (row: string[]) =
            row
            |> Array.mapi (fun c s -> if c >= 3 then s.PadLeft widths.[c] else s.PadRight widths.[c])
            |> String.concat "  "
            |> fun s -> s.TrimEnd()
        let rule = String('-', (Array.sum widths) + 2 * (widths.Length - 1))
        let sb = StringBuilder()
        sb.AppendLine(line header).AppendLine(rule) |> ignore
        for row in cells do
            sb.AppendLine(line row) |> ignore
        sb.AppendLine(rule).AppendLine(line footer) |> ignore
        sb
            .Append(
                sprintf
                    "%d entr%s, %s parameters, %s"
                    all.Entries
                    (if all.Entries = 1 then "y" else "ies")
                    (number all.Parameters)
                    (formatBytes all.Bytes)
            )
            .ToString()
