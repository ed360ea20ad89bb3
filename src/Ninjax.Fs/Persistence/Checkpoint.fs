namespace Ninjax

open System
open System.Collections.Generic
open System.IO
open System.Text
open System.Text.Json
open TorchSharp

/// What a checkpoint stores besides its tensors: the training step and free-form strings
/// (the safetensors <c>__metadata__</c> table, which maps strings to strings).
type CheckpointMetadata =
    {
        /// The training step the checkpoint was taken at, stored as the metadata entry <c>step</c>.
        Step: int64 option
        /// Any other strings to keep with the tensors (run name, config, git commit, ...).
        /// The name <c>step</c> is reserved for <see cref="P:Ninjax.CheckpointMetadata.Step"/>.
        Strings: Map<string, string>
    }

/// Functions building checkpoint metadata.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module CheckpointMetadata =

    /// No step and no strings.
    let empty = { Step = None; Strings = Map.empty }

    /// Metadata holding only a step.
    let ofStep (step: int64) = { Step = Some step; Strings = Map.empty }

    /// Sets the step.
    let withStep (step: int64) (metadata: CheckpointMetadata) = { metadata with Step = Some step }

    /// Adds or replaces one string.
    let withString (name: string) (value: string) (metadata: CheckpointMetadata) =
        { metadata with Strings = metadata.Strings.Add(name, value) }

/// One tensor as a checkpoint file describes it, read from the header alone.
type CheckpointEntry =
    {
        /// The state key.
        Key: string
        /// The element type.
        Dtype: torch.ScalarType
        /// The shape; empty for a scalar.
        Shape: int64[]
    }

/// A way in which a checkpoint file disagrees with the state it is loaded into.
type CheckpointMismatch =
    /// The expected state has the key; the file does not.
    | MissingKey of Key: string
    /// The file has the key; the expected state does not.
    | UnexpectedKey of Key: string
    /// Both have the key with different shapes.
    | ShapeMismatch of Key: string * Expected: int64[] * Actual: int64[]
    /// Both have the key with different element types.
    | DtypeMismatch of Key: string * Expected: torch.ScalarType * Actual: torch.ScalarType

    /// A one-line description naming the key and what differs.
    override this.ToString() =
        let shape (s: int64[]) = "[" + String.Join(", ", s) + "]"
        match this with
        | MissingKey k -> sprintf "missing key '%s' (expected by the state, absent from the file)" k
        | UnexpectedKey k -> sprintf "unexpected key '%s' (in the file, not in the expected state)" k
        | ShapeMismatch(k, e, a) -> sprintf "key '%s' has shape %s in the file, expected %s" k (shape a) (shape e)
        | DtypeMismatch(k, e, a) -> sprintf "key '%s' has dtype %O in the file, expected %O" k a e

/// Raised by <c>Checkpoint.loadInto</c> when a file does not fit the expected state; lists every
/// problem at once, and nothing has been loaded.
type CheckpointMismatchException(path: string, problems: IReadOnlyList<CheckpointMismatch>) =
    inherit InvalidOperationException(
        sprintf
            "Checkpoint '%s' does not match the expected state (%d problem%s):\n  %s"
            path
            problems.Count
            (if problems.Count = 1 then "" else "s")
            (problems |> Seq.map string |> String.concat "\n  ")
    )

    /// The file that was being loaded.
    member _.Path = path

    /// Every way the file differs from the expected state.
    member _.Problems: IReadOnlyList<CheckpointMismatch> = problems

/// Checkpoints on disk in the safetensors format (https://github.com/huggingface/safetensors),
/// readable by Python's safetensors, PyTorch and JAX: an 8-byte little-endian header length, a
/// JSON header <c>{key: {dtype, shape, data_offsets}, "__metadata__": {string: string}}</c>, then
/// the raw little-endian bytes of every tensor. Keys are the state keys as they are
/// (<c>model/h1/w</c>).
[<RequireQualifiedAccess>]
module Checkpoint =

    /// The metadata name under which the step is stored.
    [<Literal>]
    let StepName = "step"

    /// Metadata names starting with this are Ninjax's own (the checksums), never user strings.
    [<Literal>]
    let ReservedPrefix = "ninjax."

    // The checksum of every tensor's bytes, in the order of the data: "xxh3-64 <hex> <hex> ...".
    [<Literal>]
    let private ChecksumsName = "ninjax.checksums"

    // The checksum of the header's bytes, computed with this value's digits set to zeros.
    [<Literal>]
    let private HeaderChecksumName = "ninjax.header"

    [<Literal>]
    let private Algorithm = "xxh3-64"

    // The key safetensors reserves for the metadata table.
    [<Literal>]
    let private MetadataKey = "__metadata__"

    let private hex (h: uint64) = h.ToString "x16"

    let private zeroDigest = String('0', 16)

    // The reference implementation refuses headers above 100 MB; so do we, so that a corrupted
    // length never makes us allocate gigabytes.
    let private maxHeaderBytes = 100_000_000L

    // Tensors are copied through spans of at most this many bytes (a Span is limited to 2 GB).
    let private chunkBytes = 1L <<< 30

    // safetensors dtype names for every TorchSharp dtype the format can hold. complex128 and the
    // quantized types have no safetensors name; C64 needs safetensors 0.6 or later to read.
    let private dtypeNames =
        [ torch.ScalarType.Float64, "F64"
          torch.ScalarType.Float32, "F32"
          torch.ScalarType.Float16, "F16"
          torch.ScalarType.BFloat16, "BF16"
          torch.ScalarType.Int64, "I64"
          torch.ScalarType.Int32, "I32"
          torch.ScalarType.Int16, "I16"
          torch.ScalarType.Int8, "I8"
          torch.ScalarType.Byte, "U8"
          torch.ScalarType.Bool, "BOOL"
          torch.ScalarType.ComplexFloat32, "C64" ]

    let private nameOfDtype = dict dtypeNames
    let private dtypeOfName = dict [ for d, n in dtypeNames -> n, d ]

    let private elementSize (dtype: torch.ScalarType) =
        match dtype with
        | torch.ScalarType.Float64
        | torch.ScalarType.Int64
        | torch.ScalarType.ComplexFloat32 -> 8L
        | torch.ScalarType.Float32
        | torch.ScalarType.Int32 -> 4L
        | torch.ScalarType.Float16
        | torch.ScalarType.BFloat16
        | torch.ScalarType.Int16 -> 2L
        | _ -> 1L

    /// The dtypes a checkpoint can hold.
    let supportedDtypes: torch.ScalarType list = dtypeNames |> List.map fst

    let private shapeText (s: int64[]) = "[" + String.Join(", ", s) + "]"

    let private corrupt (path: string) (why: string) =
        InvalidDataException(sprintf "Checkpoint '%s' is not a valid safetensors file: %s." path why)

    let private corruptedFile (path: string) (why: string) =
        InvalidDataException(sprintf "Checkpoint '%s' is corrupted: %s. Nothing was loaded; restore it from another copy." path why)

    // ---------------------------------------------------------------- writing

    /// The header for entries in data order: with the tensors' checksums (placeholders of the
    /// same length before they are known) and the header's own checksum, computed over these
    /// bytes with its digits set to zeros.
    let private header (entries: (string * torch.Tensor) list) (metadata: CheckpointMetadata) (digests: uint64[]) : byte[] =
        use buffer = new MemoryStream()
        (
            use json = new Utf8JsonWriter(buffer)
            json.WriteStartObject()
            let strings =
                match metadata.Step with
                | Some s -> metadata.Strings.Add(StepName, string s)
                | None -> metadata.Strings
            json.WriteStartObject MetadataKey
            for KeyValue(k, v) in strings do
                json.WriteString(k, v)
            json.WriteString(ChecksumsName, String.Join(" ", Array.append [| Algorithm |] (digests |> Array.map hex)))
            json.WriteString(HeaderChecksumName, Algorithm + " " + zeroDigest)
            json.WriteEndObject()
            let mutable offset = 0L
            for key, t in entries do
                let length = t.NumberOfElements * elementSize t.dtype
                json.WriteStartObject key
                json.WriteString("dtype", nameOfDtype.[t.dtype])
                json.WriteStartArray "shape"
                for d in t.shape do
                    json.WriteNumberValue d
                json.WriteEndArray()
                json.WriteStartArray "data_offsets"
                json.WriteNumberValue offset
                json.WriteNumberValue(offset + length)
                json.WriteEndArray()
                json.WriteEndObject()
                offset <- offset + length
            json.WriteEndObject()
        )
        // Pad with spaces to a multiple of 8 bytes, as the reference writer does, so that every
        // tensor's data starts aligned in the file.
        let raw = buffer.ToArray()
        let padded = (raw.Length + 7) / 8 * 8
        let bytes = Array.append raw (Array.create (padded - raw.Length) (byte ' '))
        let digest = System.IO.Hashing.XxHash3.HashToUInt64(ReadOnlySpan bytes)
        let placeholder = Encoding.ASCII.GetBytes(sprintf "\"%s\":\"%s %s\"" HeaderChecksumName Algorithm zeroDigest)
        let at = ReadOnlySpan(bytes).IndexOf(ReadOnlySpan placeholder)
        Encoding.ASCII.GetBytes(hex digest).CopyTo(bytes, at + placeholder.Length - 1 - zeroDigest.Length)
        bytes

    // Writes a tensor's bytes and returns their checksum; the tensor must be contiguous and on
    // the CPU.
    let private writeTensor (stream: Stream) (t: torch.Tensor) : uint64 =
        let hash = System.IO.Hashing.XxHash3()
        let total = t.NumberOfElements
        if total > 0L then
            let size = elementSize t.dtype
            let perChunk = max 1L (chunkBytes / size)
            use flat = t.reshape(-1L)
            let mutable start = 0L
            while start < total do
                let n = min perChunk (total - start)
                use chunk = flat.narrow(0L, start, n)
                let bytes = chunk.bytes
                hash.Append(Span<byte>.op_Implicit bytes)
                stream.Write bytes
                start <- start + n
        hash.GetCurrentHashAsUInt64()

    // A contiguous CPU tensor with the same values, and whether it is a new object to dispose.
    let private hostCopy (t: torch.Tensor) : torch.Tensor * bool =
        if t.device_type = DeviceType.CPU && t.is_contiguous () then
            t, false
        else
            use cpu = t.cpu ()
            cpu.contiguous (), true

    // Temporary files are named after the target, this machine and this process, so that a
    // later save can tell the leftovers of a killed save (its process is gone) from a save in
    // progress; the target's name is shortened so the temporary name fits any file system.
    let private tempSuffix = ".ninjax-tmp"

    let private tempPrefix (full: string) =
        let name = Path.GetFileName full
        let host = Environment.MachineName
        "." + name.Substring(0, min name.Length 100) + "." + host.Substring(0, min host.Length 32) + "-"

    let private tempPath (full: string) =
        Path.Combine(
            Path.GetDirectoryName full,
            sprintf "%s%d.%s%s" (tempPrefix full) Environment.ProcessId (Guid.NewGuid().ToString("N").Substring(0, 8)) tempSuffix
        )

    /// Deletes the temporary files that saves of this target on this machine left behind when
    /// they were killed: those whose process no longer runs.
    let private removeStaleTemporaries (full: string) =
        let prefix = tempPrefix full
        let alive (pid: int) =
            pid = Environment.ProcessId
            || (try
                    use p = Diagnostics.Process.GetProcessById pid
                    not p.HasExited
                with _ -> false)
        try
            for file in Directory.EnumerateFiles(Path.GetDirectoryName full, prefix + "*" + tempSuffix) do
                let name = Path.GetFileName file
                let rest = name.Substring(prefix.Length)
                match Int32.TryParse(rest.Substring(0, max 0 (rest.IndexOf '.'))) with
                | true, pid when not (alive pid) -> try File.Delete file with _ -> ()
                | _ -> ()
        with _ -> ()

    /// An I/O error of a save, saying which checkpoint it was saving (the error itself names the
    /// temporary file it was writing).
    let private saveFailed (target: string) (temp: string) (e: exn) : exn =
        let message =
            sprintf "Cannot save the checkpoint '%s' (it is written to '%s' first, then renamed): %s" target temp e.Message
        match e with
        | :? UnauthorizedAccessException -> UnauthorizedAccessException(message, e) :> exn
        | :? PathTooLongException -> PathTooLongException(message, e) :> exn
        | :? DirectoryNotFoundException -> DirectoryNotFoundException(message, e) :> exn
        | :? IOException -> IOException(message, e) :> exn
        | _ -> e

    /// Saves a state and its metadata to a safetensors file. The file is written under a temporary
    /// name in the same directory, flushed to disk and then renamed over <paramref name="path"/>,
    /// so a crash part way through leaves any previous checkpoint at that path intact; the next
    /// save of the same file deletes what a killed save left. The metadata holds a checksum of
    /// every tensor's bytes and of the header (as <c>ninjax.*</c> strings, which other
    /// safetensors readers ignore), which load verifies. Tensors on other devices are copied to
    /// the CPU to be written. ArgumentException naming every key whose dtype the format cannot
    /// hold (see <see cref="supportedDtypes"/>), a disposed or meta-device tensor, the key
    /// <c>__metadata__</c>, or metadata strings named <c>step</c> or <c>ninjax.*</c>.
    let save (path: string) (state: State, metadata: CheckpointMetadata) : unit =
        if String.IsNullOrWhiteSpace path then
            raise (ArgumentException("The checkpoint path is empty.", "path"))
        if isNull (box state) then
            raise (ArgumentNullException("state"))
        if isNull (box metadata.Strings) then
            raise (ArgumentNullException("metadata", "The metadata strings are null; use CheckpointMetadata.empty."))
        if metadata.Strings.ContainsKey StepName then
            raise (
                ArgumentException(
                    sprintf "The metadata string '%s' is reserved for the step; %s." StepName (Text.code (Caller.fromStack ()) "set CheckpointMetadata's Step field" "pass it as step:"),
                    "metadata"
                )
            )
        for KeyValue(k, v) in metadata.Strings do
            if isNull k || isNull v then
                raise (ArgumentException(sprintf "The metadata string '%s' is null; safetensors metadata holds strings only." k, "metadata"))
            if k.StartsWith(ReservedPrefix, StringComparison.Ordinal) then
                raise (ArgumentException(sprintf "The metadata string '%s' uses the prefix '%s', which is reserved for Ninjax's checksums; choose another name." k ReservedPrefix, "metadata"))
        if State.containsKey MetadataKey state then
            raise (
                ArgumentException(
                    sprintf "Cannot save to '%s': the state key '%s' is reserved by the safetensors format for the metadata table, so the file could not be loaded. Rename the entry." path MetadataKey,
                    "state"
                )
            )
        let caller = Caller.fromStack ()
        let unusable =
            State.toSeq state
            |> Seq.choose (fun (k, t) ->
                if t.IsInvalid then Some(sprintf "'%s' (a disposed tensor)" k)
                elif t.device_type = DeviceType.META then
                    Some(sprintf "'%s' (on the meta device: shapes only, as %s returns, no values)" k (Text.code caller "Nj.initShapes" "Nj.InitShapes"))
                else None)
            |> List.ofSeq
        if not unusable.IsEmpty then
            raise (
                ArgumentException(
                    sprintf
                        "Cannot save to '%s': these entries hold no data to write: %s. Save a state that holds values (from %s or training)."
                        path
                        (unusable |> List.truncate 5 |> String.concat ", ")
                        (Text.code caller "Nj.init" "Nj.Init"),
                    "state"
                )
            )
        let unsupported =
            State.toSeq state
            |> Seq.filter (fun (_, t) -> not (nameOfDtype.ContainsKey t.dtype))
            |> Seq.map (fun (k, t) -> sprintf "'%s' (%O)" k t.dtype)
            |> List.ofSeq
        if not unsupported.IsEmpty then
            raise (
                ArgumentException(
                    sprintf
                        "Cannot save to '%s': safetensors has no dtype for %s. Supported dtypes: %s."
                        path
                        (String.concat ", " unsupported)
                        (supportedDtypes |> List.map string |> String.concat ", "),
                    "state"
                )
            )
        // Largest elements first, then by key, as the reference writer orders them: every tensor
        // then starts at an offset that is a multiple of its element size.
        let entries =
            State.toSeq state
            |> Seq.sortBy (fun (k, t) -> -(elementSize t.dtype), k)
            |> List.ofSeq
        let full = Path.GetFullPath path
        if Directory.Exists full then
            raise (IOException(sprintf "Cannot save the checkpoint '%s': a directory of that name exists." full))
        removeStaleTemporaries full
        let temp = tempPath full
        try
            (
                use file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 <<< 20)
                // The header is written with placeholder checksums of the right length, then again
                // once the data has been written and its checksums are known.
                let placeholder = header entries metadata (Array.zeroCreate entries.Length)
                let lengthBytes = Array.zeroCreate<byte> 8
                Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(Span lengthBytes, uint64 placeholder.Length)
                file.Write lengthBytes
                file.Write placeholder
                let digests =
                    [| for _, t in entries do
                           let host, owned = hostCopy t
                           try
                               writeTensor file host
                           finally
                               if owned then host.Dispose() |]
                let final = header entries metadata digests
                file.Position <- 8L
                file.Write final
                file.Flush true
            )
            File.Move(temp, full, true)
        with e ->
            (try File.Delete temp with _ -> ())
            match e with
            | :? IOException
            | :? UnauthorizedAccessException -> raise (saveFailed full temp e)
            | _ -> reraise ()

    // ---------------------------------------------------------------- reading

    /// A parsed and validated header.
    type private Header =
        { Entries: (CheckpointEntry * int64 * int64) list // entry, begin, end (relative to the data)
          Metadata: CheckpointMetadata
          DataStart: int64
          /// The checksums of the tensors' bytes in data order; None for files without them.
          Digests: uint64[] option }

    /// Checks the header's bytes against the checksum stored in them, if any: the digits of the
    /// stored checksum are read and set to zeros, and the bytes hashed. None when they agree or
    /// the file has no header checksum; otherwise what is wrong.
    let private headerChecksumProblem (headerBytes: byte[]) (stored: string option) : string option =
        match stored with
        | None -> None
        | Some value ->
            let marker = Encoding.ASCII.GetBytes(sprintf "\"%s\":\"%s " HeaderChecksumName Algorithm)
            let span = ReadOnlySpan headerBytes
            let at = span.IndexOf(ReadOnlySpan marker)
            let digits = at + marker.Length
            let parsed (text: string) =
                match UInt64.TryParse(text, Globalization.NumberStyles.AllowHexSpecifier, Globalization.CultureInfo.InvariantCulture) with
                | true, v when text.Length = 16 -> Some v
                | _ -> None
            if at < 0 || span.Slice(digits).IndexOf(ReadOnlySpan marker) >= 0 || digits + 16 > headerBytes.Length
               || value <> Algorithm + " " + Encoding.ASCII.GetString(headerBytes, digits, 16) then
                Some "its header checksum is not where Ninjax writes it (was the file rewritten by another tool?)"
            else
                match parsed (Encoding.ASCII.GetString(headerBytes, digits, 16)) with
                | None -> Some "its header checksum is not a 64-bit hexadecimal number"
                | Some expected ->
                    let copy = Array.copy headerBytes
                    Encoding.ASCII.GetBytes(zeroDigest).CopyTo(copy, digits)
                    if System.IO.Hashing.XxHash3.HashToUInt64(ReadOnlySpan copy) = expected then None
                    else Some "its header does not match the checksum stored in it (a key, dtype, shape, offset or metadata string changed since it was saved)"

    let private readHeader (path: string) (file: FileStream) : Header =
        let fail why = raise (corrupt path why)
        let length = file.Length
        if length < 8L then
            fail (sprintf "it is %d bytes long, shorter than the 8-byte header length that starts the format" length)
        let lengthBytes = Array.zeroCreate<byte> 8
        file.ReadExactly(Span lengthBytes)
        let n = Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(ReadOnlySpan lengthBytes)
        if n > uint64 maxHeaderBytes then
            fail (sprintf "the header length is %d bytes, more than the %d allowed" n maxHeaderBytes)
        if int64 n > length - 8L then
            fail (sprintf "the header length is %d bytes but only %d bytes follow it" n (length - 8L))
        let headerBytes = Array.zeroCreate<byte> (int n)
        file.ReadExactly(Span headerBytes)
        let text =
            try
                UTF8Encoding(false, true).GetString headerBytes
            with :? DecoderFallbackException ->
                fail "the header is not valid UTF-8"
        use doc =
            try
                JsonDocument.Parse text
            with :? JsonException as e ->
                fail (sprintf "the header is not valid JSON (%s)" e.Message)
        if doc.RootElement.ValueKind <> JsonValueKind.Object then
            fail (sprintf "the header is a JSON %O, not an object" doc.RootElement.ValueKind)
        // A file with checksums must match them before anything in its header is believed.
        let storedHeaderChecksum =
            match doc.RootElement.TryGetProperty MetadataKey with
            | true, m when m.ValueKind = JsonValueKind.Object ->
                match m.TryGetProperty HeaderChecksumName with
                | true, v when v.ValueKind = JsonValueKind.String -> Some(v.GetString())
                | true, _ -> Some ""
                | _ -> None
            | _ -> None
        match headerChecksumProblem headerBytes storedHeaderChecksum with
        | Some why -> raise (corruptedFile path why)
        | None -> ()
        let problems = ResizeArray<string>()
        let entries = ResizeArray<CheckpointEntry * int64 * int64>()
        let seen = HashSet<string>()
        let mutable strings = Map.empty
        let mutable step = None
        let reserved = Dictionary<string, string>()
        for prop in doc.RootElement.EnumerateObject() do
            let key = prop.Name
            if not (seen.Add key) then
                problems.Add(sprintf "key '%s' appears twice" key)
            elif key = "__metadata__" then
                if prop.Value.ValueKind <> JsonValueKind.Object then
                    problems.Add "__metadata__ is not an object of strings"
                else
                    for m in prop.Value.EnumerateObject() do
                        if m.Value.ValueKind <> JsonValueKind.String then
                            problems.Add(sprintf "metadata '%s' is a JSON %O, not a string" m.Name m.Value.ValueKind)
                        elif m.Name.StartsWith(ReservedPrefix, StringComparison.Ordinal) then
                            reserved.[m.Name] <- m.Value.GetString()
                        elif m.Name = StepName then
                            match Int64.TryParse(m.Value.GetString(), Globalization.NumberStyles.AllowLeadingSign, Globalization.CultureInfo.InvariantCulture) with
                            | true, s -> step <- Some s
                            | _ -> problems.Add(sprintf "metadata 'step' is '%s', not a 64-bit integer" (m.Value.GetString()))
                        else
                            strings <- strings.Add(m.Name, m.Value.GetString())
            else
                let v = prop.Value
                let field name =
                    match v.ValueKind with
                    | JsonValueKind.Object ->
                        match v.TryGetProperty(name: string) with
                        | true, f -> Some f
                        | _ -> None
                    | _ -> None
                let naturals (f: JsonElement) =
                    if f.ValueKind <> JsonValueKind.Array then None
                    else
                        let xs = [ for x in f.EnumerateArray() -> match x.TryGetInt64() with | true, i when i >= 0L -> Some i | _ -> None ]
                        if List.forall Option.isSome xs then Some(xs |> List.map Option.get |> Array.ofList) else None
                let before = problems.Count
                match Key.problem key with
                | Some why -> problems.Add(sprintf "entry '%s' is not a valid state key (%s)" key why)
                | None -> ()
                let dtype =
                    match field "dtype" with
                    | Some d when d.ValueKind = JsonValueKind.String ->
                        match dtypeOfName.TryGetValue(d.GetString()) with
                        | true, t -> Some t
                        | _ ->
                            problems.Add(
                                sprintf
                                    "entry '%s' has dtype '%s', which is unknown or has no TorchSharp equivalent (supported: %s)"
                                    key (d.GetString()) (dtypeNames |> List.map snd |> String.concat " ")
                            )
                            None
                    | _ ->
                        problems.Add(sprintf "entry '%s' has no string 'dtype'" key)
                        None
                let shape =
                    match field "shape" |> Option.bind naturals with
                    | Some s -> Some s
                    | None ->
                        problems.Add(sprintf "entry '%s' has no 'shape' array of non-negative integers" key)
                        None
                let offsets =
                    match field "data_offsets" |> Option.bind naturals with
                    | Some [| b; e |] when b <= e -> Some(b, e)
                    | _ ->
                        problems.Add(sprintf "entry '%s' has no 'data_offsets' pair [begin, end] with begin <= end" key)
                        None
                match dtype, shape, offsets with
                | Some d, Some s, Some(b, e) when problems.Count = before ->
                    let bytes =
                        try
                            Some(Array.fold (fun acc x -> Checked.(*) acc x) (elementSize d) s)
                        with :? OverflowException ->
                            None
                    match bytes with
                    | Some bytes when bytes = e - b -> entries.Add({ Key = key; Dtype = d; Shape = s }, b, e)
                    | Some bytes ->
                        problems.Add(
                            sprintf "entry '%s' (%s %s) needs %d bytes but its data_offsets [%d, %d] span %d" key (dtypeNames |> List.find (fst >> (=) d) |> snd) (shapeText s) bytes b e (e - b)
                        )
                    | None -> problems.Add(sprintf "entry '%s' has a shape %s whose size overflows" key (shapeText s))
                | _ -> ()
        // The data must be exactly the tensors, back to back: no gaps, no overlaps, nothing after.
        let dataLength = length - 8L - int64 n
        let sorted = entries |> Seq.sortBy (fun (_, b, _) -> b) |> List.ofSeq
        if problems.Count = 0 then
            let mutable expected = 0L
            for entry, b, e in sorted do
                if b <> expected && problems.Count < 20 then
                    problems.Add(
                        sprintf
                            "entry '%s' starts at data offset %d, expected %d (tensors must follow each other without gaps or overlaps)"
                            entry.Key b expected
                    )
                expected <- e
            if problems.Count = 0 && expected <> dataLength then
                if expected > dataLength then
                    problems.Add(sprintf "the tensors need %d bytes of data but the file holds only %d (is it truncated?)" expected dataLength)
                else
                    problems.Add(sprintf "the tensors need %d bytes of data but the file holds %d" expected dataLength)
        // Ninjax's own metadata: both checksums or neither, and one tensor checksum per entry.
        let digests =
            let known = set [ ChecksumsName; HeaderChecksumName ]
            for name in reserved.Keys do
                if not (known.Contains name) then problems.Add(sprintf "its metadata has '%s', which is not a name Ninjax writes" name)
            match reserved.TryGetValue ChecksumsName, storedHeaderChecksum with
            | (false, _), None -> None
            | (true, list), Some _ ->
                let parts = list.Split ' '
                let values =
                    parts
                    |> Array.skip 1
                    |> Array.choose (fun p ->
                        match UInt64.TryParse(p, Globalization.NumberStyles.AllowHexSpecifier, Globalization.CultureInfo.InvariantCulture) with
                        | true, v when p.Length = 16 -> Some v
                        | _ -> None)
                if parts.[0] <> Algorithm || values.Length <> parts.Length - 1 || values.Length <> sorted.Length then
                    problems.Add(sprintf "its '%s' metadata does not hold one %s checksum per tensor" ChecksumsName Algorithm)
                Some values
            | _ ->
                problems.Add(sprintf "its metadata holds one of '%s' and '%s' but not the other" ChecksumsName HeaderChecksumName)
                None
        if problems.Count > 0 then
            fail (String.Join("; ", problems |> Seq.truncate 20) + (if problems.Count > 20 then sprintf "; ... (%d problems)" problems.Count else ""))
        { Entries = sorted
          Metadata = { Step = step; Strings = strings }
          DataStart = 8L + int64 n
          Digests = digests }

    /// The kind of file at a path (the S_IFMT bits of its mode), through the .NET runtime's own
    /// native stat; None where that is not available (Windows) or the path does not exist.
    module private FileKind =
        [<Struct; Runtime.InteropServices.StructLayout(Runtime.InteropServices.LayoutKind.Sequential, Size = 256)>]
        type Status =
            val Flags: int
            val Mode: int

        [<Runtime.InteropServices.DllImport("libSystem.Native", EntryPoint = "SystemNative_Stat", ExactSpelling = true)>]
        extern int stat([<Runtime.InteropServices.MarshalAs(Runtime.InteropServices.UnmanagedType.LPUTF8Str)>] string path, Status& status)

        let ofPath (path: string) : int option =
            if OperatingSystem.IsWindows() then None
            else
                try
                    let mutable status = Status()
                    if stat (path, &status) = 0 then Some(status.Mode &&& 0xF000) else None
                with
                | :? DllNotFoundException
                | :? EntryPointNotFoundException -> None

    let private openRead (path: string) =
        if String.IsNullOrWhiteSpace path then
            raise (ArgumentException("The checkpoint path is empty.", "path"))
        if Directory.Exists path then
            raise (IOException(sprintf "Checkpoint '%s' is a directory, not a checkpoint file." path))
        // Opening a FIFO or a device would block or read forever: only regular files are read.
        match FileKind.ofPath path with
        | Some kind when kind <> 0x8000 ->
            let what =
                match kind with
                | 0x1000 -> "a FIFO (named pipe)"
                | 0x2000 -> "a character device"
                | 0x6000 -> "a block device"
                | 0xC000 -> "a socket"
                | _ -> "not a regular file"
            raise (IOException(sprintf "Checkpoint '%s' is %s, not a checkpoint file." path what))
        | _ -> ()
        new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 <<< 20)

    // Reads the tensors the header describes, in file order. Any failure disposes what was read.
    let private readTensors (path: string) (file: FileStream) (header: Header) (device: string -> torch.Device) : State =
        let loaded = ResizeArray<string * torch.Tensor>()
        try
            file.Position <- header.DataStart
            let hash = System.IO.Hashing.XxHash3()
            for i, (entry, _, _) in List.indexed header.Entries do
                let t = torch.empty(entry.Shape, dtype = entry.Dtype)
                loaded.Add(entry.Key, t)
                hash.Reset()
                let total = t.NumberOfElements
                if total > 0L then
                    let perChunk = max 1L (chunkBytes / elementSize entry.Dtype)
                    use flat = t.reshape(-1L)
                    let mutable start = 0L
                    while start < total do
                        let n = min perChunk (total - start)
                        use chunk = flat.narrow(0L, start, n)
                        let bytes = chunk.bytes
                        file.ReadExactly bytes
                        hash.Append(Span<byte>.op_Implicit bytes)
                        // A bool is one byte, 0 or 1; anything else is not a bool libtorch can use.
                        if entry.Dtype = torch.ScalarType.Bool then
                            let bad = MemoryExtensions.IndexOfAnyExcept(Span<byte>.op_Implicit bytes, 0uy, 1uy)
                            if bad >= 0 then
                                raise (
                                    corrupt path (sprintf "entry '%s' is BOOL but its element %d is the byte %d, not 0 or 1" entry.Key (start + int64 bad) bytes.[bad])
                                )
                        start <- start + n
                match header.Digests with
                | Some digests when hash.GetCurrentHashAsUInt64() <> digests.[i] ->
                    raise (corruptedFile path (sprintf "the bytes of '%s' do not match the checksum stored when it was saved" entry.Key))
                | _ -> ()
            for i in 0 .. loaded.Count - 1 do
                let k, t = loaded.[i]
                let target = device k
                if target.``type`` <> DeviceType.CPU then
                    let moved = t.``to`` target
                    t.Dispose()
                    loaded.[i] <- (k, moved)
            State.ofSeq loaded
        with e ->
            for _, t in loaded do
                t.Dispose()
            match e with
            | :? EndOfStreamException -> raise (corrupt path "the file ended before all the tensor data was read")
            | _ -> reraise ()

    /// The metadata and the entries (key, dtype, shape) a checkpoint holds, read from its header
    /// alone. InvalidDataException naming the file when it is not a valid safetensors file.
    let inspect (path: string) : CheckpointMetadata * CheckpointEntry list =
        use file = openRead path
        let h = readHeader path file
        h.Metadata, h.Entries |> List.map (fun (e, _, _) -> e) |> List.sortBy (fun e -> e.Key)

    let private mismatches (expected: State) (entries: CheckpointEntry seq) : CheckpointMismatch list =
        let inFile = entries |> Seq.map (fun e -> e.Key, e) |> Map.ofSeq
        let keys = Set.union (Set.ofSeq (State.keys expected)) (Set.ofSeq inFile.Keys)
        [ for k in keys do
              match State.tryFind k expected, inFile.TryFind k with
              | Some _, None -> MissingKey k
              | None, Some _ -> UnexpectedKey k
              | Some t, Some e ->
                  if t.shape <> e.Shape then ShapeMismatch(k, t.shape, e.Shape)
                  if t.dtype <> e.Dtype then DtypeMismatch(k, t.dtype, e.Dtype)
              | None, None -> () ]

    /// Every way a checkpoint differs from an expected state (missing and unexpected keys, shape
    /// and dtype mismatches), in key order; empty when it fits. Reads only the header.
    let check (expected: State) (path: string) : CheckpointMismatch list =
        if isNull (box expected) then
            raise (ArgumentNullException("expected"))
        inspect path |> snd |> mismatches expected

    /// Loads a checkpoint as it is: its state (on the CPU) and metadata. InvalidDataException
    /// naming the file when it is truncated or corrupted, or holds keys that are not valid
    /// state keys; FileNotFoundException when it does not exist.
    let load (path: string) : State * CheckpointMetadata =
        use file = openRead path
        let h = readHeader path file
        readTensors path file h (fun _ -> torch.CPU), h.Metadata

    /// Loads a checkpoint that must fit an expected state (for example the result of
    /// <c>Nj.init</c>, or of <c>Nj.initShapes</c>, which computes nothing): the same keys, shapes
    /// and dtypes. Each tensor is placed on the device of the expected entry (the CPU for an entry
    /// that holds a shape only). When anything differs, CheckpointMismatchException lists every problem
    /// and nothing is loaded.
    let loadInto (expected: State) (path: string) : State * CheckpointMetadata =
        if isNull (box expected) then
            raise (ArgumentNullException("expected"))
        use file = openRead path
        let h = readHeader path file
        let problems = h.Entries |> Seq.map (fun (e, _, _) -> e) |> mismatches expected
        if not problems.IsEmpty then
            raise (CheckpointMismatchException(path, problems))
        // An expected state of shapes only (Nj.initShapes) says nothing about devices: the CPU.
        let deviceOf (k: string) =
            let d = expected.[k].device
            if d.``type`` = DeviceType.META then torch.CPU else d
        readTensors path file h deviceOf, h.Metadata
