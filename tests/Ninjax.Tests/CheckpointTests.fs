module Ninjax.Tests.CheckpointTests

open System
open System.Diagnostics
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

/// A fresh empty directory, deleted when disposed.
type TempDir() =
    let path = Path.Combine(Path.GetTempPath(), "ninjax-ckpt-" + Guid.NewGuid().ToString "N")
    do Directory.CreateDirectory path |> ignore
    member _.Path = path
    member _.File(name: string) = Path.Combine(path, name)
    interface IDisposable with
        member _.Dispose() = try Directory.Delete(path, true) with _ -> ()

/// The raw bytes of a tensor (CPU, contiguous).
let bytesOf (t: torch.Tensor) : byte[] = t.contiguous().bytes.ToArray()

/// Asserts two states hold the same keys with tensors of the same dtype, shape and bytes.
let expectBitIdentical (actual: State) (expected: State) (msg: string) =
    Expect.sequenceEqual (State.keys actual) (State.keys expected) (msg + ": keys")
    for k in State.keys expected do
        let a, e = actual.[k], expected.[k]
        Expect.equal a.dtype e.dtype (sprintf "%s: dtype of %s" msg k)
        Expect.equal a.shape e.shape (sprintf "%s: shape of %s" msg k)
        Expect.sequenceEqual (bytesOf a) (bytesOf e) (sprintf "%s: bytes of %s" msg k)

/// A tensor of a dtype and shape whose bytes come from a seeded generator: any bit pattern
/// (NaNs with payloads, infinities, subnormals) for numbers, 0 or 1 for bools.
let randomTensor (dtype: torch.ScalarType) (shape: int64[]) (seed: int) : torch.Tensor =
    let t = torch.empty(shape, dtype = dtype)
    let bytes = Array.zeroCreate<byte> (int (t.NumberOfElements * t.ElementSize))
    let rng = Random seed
    rng.NextBytes bytes
    if dtype = torch.ScalarType.Bool then
        for i in 0 .. bytes.Length - 1 do
            bytes.[i] <- bytes.[i] &&& 1uy
    t.bytes <- Span bytes
    t

/// A random entry: key, dtype, shape and the seed of its bytes.
type EntrySpec = { Key: string; Dtype: torch.ScalarType; Shape: int64[]; Seed: int }

/// A random checkpoint: entries and metadata.
type CheckpointSpec = { Entries: EntrySpec list; Step: int64 option; Strings: (string * string) list }

let genSegment = Gen.elements [ "model"; "h1"; "h2"; "w"; "b"; "opt"; "m"; "v"; "step"; "_x"; "A9"; "layer_0" ]
let genKey = gen {
    let! n = Gen.choose (1, 4)
    let! segments = Gen.listOfLength n genSegment
    return String.Join("/", segments) }
let genShape = gen {
    let! rank = Gen.choose (0, 3)
    // Zero-size dimensions are drawn often on purpose.
    let! dims = Gen.listOfLength rank (Gen.frequency [ 1, Gen.constant 0L; 4, Gen.choose (1, 5) |> Gen.map int64 ])
    return Array.ofList dims }
let genText =
    Gen.elements ([ 'a' .. 'z' ] @ [ ' '; '"'; '\\'; '\n'; '\t'; '/'; '{'; '}'; 'é'; '日'; '\u0001' ])
    |> Gen.arrayOf
    |> Gen.map String
let genSpec = gen {
    let! entries =
        gen {
            let! key = genKey
            let! dtype = Gen.elements Checkpoint.supportedDtypes
            let! shape = genShape
            let! seed = Gen.choose (0, Int32.MaxValue)
            return { Key = key; Dtype = dtype; Shape = shape; Seed = seed } }
        |> Gen.listOf
        |> Gen.map (List.distinctBy (fun e -> e.Key) >> List.truncate 12)
    let! step = Gen.optionOf (Gen.choose (-1000, Int32.MaxValue) |> Gen.map (fun s -> int64 s * 4099L))
    let! strings =
        Gen.zip genText genText
        |> Gen.listOf
        |> Gen.map (List.filter (fun (k, _) -> k <> Checkpoint.StepName) >> List.distinctBy fst >> List.truncate 5)
    return { Entries = entries; Step = step; Strings = strings } }

let stateOf (spec: CheckpointSpec) =
    spec.Entries |> List.map (fun e -> e.Key, randomTensor e.Dtype e.Shape e.Seed) |> State.ofSeq

let metadataOf (spec: CheckpointSpec) = { Step = spec.Step; Strings = Map.ofList spec.Strings }

/// Bytes of a file in the safetensors layout with a given header text and data.
let rawFile (header: string) (data: byte[]) : byte[] =
    let h = Encoding.UTF8.GetBytes header
    Array.concat [ BitConverter.GetBytes(uint64 h.Length); h; data ]

let f32Bytes (xs: float32 list) = xs |> List.map BitConverter.GetBytes |> Array.concat

/// A small valid checkpoint's state.
let small () =
    State.ofSeq [ "model/w", vec [ 1.0f; 2.0f; 3.0f ]; "model/b", scalar 0.5f; "opt/count", torch.tensor 7L ]

/// The helper mode of the test exe used by the kill test: writes a checkpoint of about
/// <paramref name="megabytes"/> MB with step 2 to <paramref name="path"/>.
let writeCheckpointHelper (path: string) (megabytes: int) =
    let perTensor = 1L <<< 20 // 1 Mi float32 = 4 MB
    let state = State.ofSeq [ for i in 1 .. megabytes / 4 -> sprintf "big/t%04d" i, torch.rand([| perTensor |]) ]
    Checkpoint.save path (state, CheckpointMetadata.ofStep 2L)

/// The command that runs this test exe (the apphost, or dotnet with the dll).
let selfCommand () : string * string list =
    let exe = Environment.ProcessPath
    if Path.GetFileNameWithoutExtension exe = "dotnet" then exe, [ Reflection.Assembly.GetEntryAssembly().Location ]
    else exe, []

/// Starts the helper writing a big checkpoint to target and kills it as soon as it has written
/// anything (a new file with data in it, or a change to the target); returns whether the kill
/// landed before the helper finished, and the files other than target left in the directory.
let killWhileSaving (dir: TempDir) (target: string) (megabytes: int) =
    let exe, prefix = selfCommand ()
    let psi = ProcessStartInfo(exe)
    for a in prefix @ [ "--write-checkpoint"; target; string megabytes ] do
        psi.ArgumentList.Add a
    psi.UseShellExecute <- false
    psi.RedirectStandardError <- true
    psi.RedirectStandardOutput <- true
    let targetLength = FileInfo(target).Length
    use child = Process.Start psi
    let others () = Directory.GetFiles dir.Path |> Array.filter (fun f -> f <> target)
    let length (f: string) = try FileInfo(f).Length with _ -> 0L
    let started () =
        length target <> targetLength || others () |> Array.exists (fun f -> length f > 0L)
    let watch = Stopwatch.StartNew()
    while not (started ()) && not child.HasExited && watch.Elapsed < TimeSpan.FromMinutes 2.0 do
        Threading.Thread.Sleep 1
    let killedMidWrite = not child.HasExited
    if killedMidWrite then (try child.Kill true with :? InvalidOperationException -> ())
    child.WaitForExit()
    if not killedMidWrite && child.ExitCode <> 0 then
        failtestf "the helper failed (exit %d): %s" child.ExitCode (child.StandardError.ReadToEnd())
    killedMidWrite, others ()

let interopDtypes =
    Checkpoint.supportedDtypes |> List.filter (fun d -> d <> torch.ScalarType.ComplexFloat32)

[<Tests>]
let tests =
    testList "checkpoint" [
        testPropertyWithConfig
            { FsCheckConfig.defaultConfig with maxTest = 60 }
            "random states and metadata of every supported dtype round-trip bit for bit"
        <| Prop.forAll (Arb.fromGen genSpec) (fun spec ->
                use dir = new TempDir()
                let path = dir.File "ckpt.safetensors"
                let state = stateOf spec
                Checkpoint.save path (state, metadataOf spec)
                let loaded, meta = Checkpoint.load path
                expectBitIdentical loaded state "plain load"
                Expect.equal meta (metadataOf spec) "metadata"
                let into, meta2 = Checkpoint.loadInto state path
                expectBitIdentical into state "loadInto"
                Expect.equal meta2 (metadataOf spec) "metadata via loadInto"
                Expect.equal (Checkpoint.check state path) [] "no mismatches")

        testCase "scalars, zero-size dimensions and every supported dtype in one file" <| fun () ->
            use dir = new TempDir()
            let path = dir.File "all.safetensors"
            let state =
                State.ofSeq [
                    for i, d in List.indexed Checkpoint.supportedDtypes do
                        sprintf "s/%O" d, randomTensor d [||] i
                        sprintf "z/%O" d, randomTensor d [| 3L; 0L; 2L |] i
                        sprintf "m/%O" d, randomTensor d [| 2L; 3L |] i ]
            Checkpoint.save path (state, CheckpointMetadata.empty)
            let loaded, meta = Checkpoint.load path
            expectBitIdentical loaded state "all dtypes"
            Expect.equal meta CheckpointMetadata.empty "no metadata"
            Expect.equal loaded.["s/Float32"].shape [||] "scalar stays a scalar"

        testCase "float NaN payloads, infinities and negative zero survive exactly" <| fun () ->
            use dir = new TempDir()
            let path = dir.File "nan.safetensors"
            let bits = [| 0x7FC00001u; 0xFFC12345u; 0x7F800000u; 0xFF800000u; 0x80000000u; 0x00000001u |]
            let t = torch.empty([| 6L |], dtype = torch.float32)
            t.bytes <- Span(bits |> Array.collect BitConverter.GetBytes)
            Checkpoint.save path (State.ofSeq [ "x", t ], CheckpointMetadata.empty)
            let loaded, _ = Checkpoint.load path
            Expect.sequenceEqual (bytesOf loaded.["x"]) (bytesOf t) "bits"

        testCase "complex128 and quantized dtypes cannot be saved; the error lists them and the old file stays" <| fun () ->
            use dir = new TempDir()
            let path = dir.File "c.safetensors"
            Checkpoint.save path (small (), CheckpointMetadata.ofStep 1L)
            let before = File.ReadAllBytes path
            let bad =
                State.merge (small ()) (State.ofSeq [ "z/c128", torch.zeros([| 2L |], dtype = torch.complex128)
                                                      "z/c128b", torch.ones([| 1L |], dtype = torch.complex128) ])
            let msg = throwsWith<ArgumentException> (fun () -> Checkpoint.save path (bad, CheckpointMetadata.empty))
            mentions msg [ path; "'z/c128' (ComplexFloat64)"; "'z/c128b' (ComplexFloat64)"; "Supported dtypes" ]
            Expect.sequenceEqual (File.ReadAllBytes path) before "previous checkpoint untouched"
            Expect.sequenceEqual (Directory.GetFiles dir.Path) [ path ] "no temporary file left"

        testCase "the file is the standard layout: 8-byte length, compact JSON padded to 8, raw data" <| fun () ->
            use dir = new TempDir()
            let path = dir.File "exact.safetensors"
            let t = torch.tensor([| 0.0f; 1.0f; 2.0f; 3.0f; 4.0f; 5.0f |]).reshape(1L, 1L, 2L, 3L)
            Checkpoint.save path (State.ofSeq [ "attn0", t ], CheckpointMetadata.empty)
            // Ninjax's checksums are metadata strings: XxHash3 of each tensor's bytes, in data
            // order, and of the header's bytes with the header checksum's digits set to zeros.
            let data = f32Bytes [ 0.0f; 1.0f; 2.0f; 3.0f; 4.0f; 5.0f ]
            let withHeaderDigest (digest: string) =
                let json =
                    sprintf
                        """{"__metadata__":{"ninjax.checksums":"xxh3-64 %016x","ninjax.header":"xxh3-64 %s"},"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}"""
                        (System.IO.Hashing.XxHash3.HashToUInt64(ReadOnlySpan data)) digest
                json.PadRight((json.Length + 7) / 8 * 8)
            let headerDigest = System.IO.Hashing.XxHash3.HashToUInt64(ReadOnlySpan(Encoding.UTF8.GetBytes(withHeaderDigest (String('0', 16)))))
            let expected = rawFile (withHeaderDigest (sprintf "%016x" headerDigest)) data
            Expect.sequenceEqual (File.ReadAllBytes path) expected "bytes"

        testCase "metadata is a string table with the step under 'step'; entries are ordered for alignment" <| fun () ->
            use dir = new TempDir()
            let path = dir.File "meta.safetensors"
            let state = State.ofSeq [ "a", torch.tensor([| 1uy |]); "b", torch.tensor([| 2.0 |]); "c", torch.tensor([| 3.0f |]) ]
            Checkpoint.save path (state, CheckpointMetadata.ofStep 12L |> CheckpointMetadata.withString "run" "x")
            let bytes = File.ReadAllBytes path
            let n = int (BitConverter.ToUInt64(bytes, 0))
            Expect.equal (n % 8) 0 "header length is a multiple of 8"
            let header = Encoding.UTF8.GetString(bytes, 8, n).TrimEnd()
            // The checksums (checked in the layout test) are left out here.
            let checksums = Text.RegularExpressions.Regex(",\"ninjax\\.checksums\":\"[^\"]*\",\"ninjax\\.header\":\"[^\"]*\"")
            Expect.equal
                (checksums.Replace(header, ""))
                ("""{"__metadata__":{"run":"x","step":"12"},"b":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"""
                 + """"c":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"a":{"dtype":"U8","shape":[1],"data_offsets":[12,13]}}""")
                "header"

        testCase "the reserved metadata name 'step' and null strings are refused" <| fun () ->
            use dir = new TempDir()
            let path = dir.File "r.safetensors"
            let msg =
                throwsWith<ArgumentException> (fun () ->
                    Checkpoint.save path (small (), CheckpointMetadata.empty |> CheckpointMetadata.withString "step" "3"))
            mentions msg [ "'step'"; "Step" ]
            let msg =
                throwsWith<ArgumentException> (fun () ->
                    Checkpoint.save path (small (), CheckpointMetadata.empty |> CheckpointMetadata.withString "run" null))
            mentions msg [ "'run'"; "null" ]
            Expect.isFalse (File.Exists path) "nothing written"

        testCase "PyBridge's independent safetensors reader reads our files, and we read its files" <| fun () ->
            use dir = new TempDir()
            let ours = dir.File "ours.safetensors"
            let state =
                State.ofSeq [ for i, d in List.indexed interopDtypes -> sprintf "m/%O" d, randomTensor d [| 2L; 3L |] (i + 100) ]
            Checkpoint.save ours (state, CheckpointMetadata.ofStep 5L)
            let read = TorchSharp.PyBridge.Safetensors.LoadStateDict(ours, null)
            Expect.equal read.Count (State.count state) "entry count"
            for KeyValue(k, t) in read do
                Expect.sequenceEqual (bytesOf t) (bytesOf state.[k]) (sprintf "PyBridge reads %s" k)
                Expect.equal t.shape state.[k].shape (sprintf "shape of %s" k)
            // PyBridge writes no padding and no metadata, in its own order.
            let theirs = dir.File "theirs.safetensors"
            let dict = Collections.Generic.Dictionary<string, torch.Tensor>()
            for k, t in State.toSeq state do
                dict.[k] <- t
            (
                use stream = File.Create theirs
                TorchSharp.PyBridge.Safetensors.SaveStateDict(stream, dict, true)
            )
            let loaded, meta = Checkpoint.load theirs
            expectBitIdentical loaded state "we read PyBridge's file"
            Expect.equal meta CheckpointMetadata.empty "no metadata"

        testCase "saving replaces the previous checkpoint and leaves no temporary files" <| fun () ->
            use dir = new TempDir()
            let path = dir.File "ckpt.safetensors"
            Checkpoint.save path (small (), CheckpointMetadata.ofStep 1L)
            let next = State.map (fun _ t -> t.mul(2L.ToScalar())) (small ())
            Checkpoint.save path (next, CheckpointMetadata.ofStep 2L)
            let loaded, meta = Checkpoint.load path
            expectBitIdentical loaded next "second save wins"
            Expect.equal meta.Step (Some 2L) "step"
            Expect.sequenceEqual (Directory.GetFiles dir.Path) [ path ] "only the checkpoint"

        testCase "saving into a missing directory fails naming it" <| fun () ->
            use dir = new TempDir()
            let path = Path.Combine(dir.Path, "nope", "ckpt.safetensors")
            let msg = throwsWith<DirectoryNotFoundException> (fun () -> Checkpoint.save path (small (), CheckpointMetadata.empty))
            mentions msg [ Path.Combine(dir.Path, "nope") ]

        testCase "a save killed part way through leaves the previous checkpoint intact" <| fun () ->
            use dir = new TempDir()
            let target = dir.File "ckpt.safetensors"
            let old = small ()
            Checkpoint.save target (old, CheckpointMetadata.ofStep 1L)
            let oldBytes = File.ReadAllBytes target
            // The helper process needs a moment to start; the bigger the checkpoint the wider the
            // window in which it is writing. Grow it until the kill lands mid-write.
            let rec attempt megabytes tries =
                let killed, left = killWhileSaving dir target megabytes
                if killed then left
                elif tries > 1 then
                    // It finished first: put the old checkpoint back and try with a bigger one.
                    Checkpoint.save target (old, CheckpointMetadata.ofStep 1L)
                    attempt (megabytes * 4) (tries - 1)
                else failtestf "the helper finished %d MB before it could be killed" megabytes
            let left = attempt 256 3
            Expect.sequenceEqual (File.ReadAllBytes target) oldBytes "the previous checkpoint is byte for byte intact"
            Expect.equal left.Length 1 "the killed save left its partial temporary file"
            let loaded, meta = Checkpoint.loadInto old target
            expectBitIdentical loaded old "and loads"
            Expect.equal meta.Step (Some 1L) "old step"
            let msg = throwsWith<InvalidDataException> (fun () -> Checkpoint.load left.[0] |> ignore)
            mentions msg [ left.[0] ]
            // The next save of the same file deletes what the killed one left behind.
            Checkpoint.save target (old, CheckpointMetadata.ofStep 3L)
            Expect.sequenceEqual (Directory.GetFiles dir.Path) [ target ] "the killed save's temporary file is gone"

        testCase "loadInto a model's init state restores it and puts step and strings back" <| fun () ->
            use dir = new TempDir()
            let path = dir.File "model.safetensors"
            let model = Dense(4, name = "model")
            let x = torch.ones(2L, 3L)
            let trained = Nj.init 1L model.Forward State.empty x
            let fresh = Nj.init 2L model.Forward State.empty x
            Expect.isFalse (identical trained.["model/w"] fresh.["model/w"]) "different seeds"
            let meta = CheckpointMetadata.ofStep 1000L |> CheckpointMetadata.withString "config" """{"lr": 0.01}"""
            Checkpoint.save path (trained, meta)
            let loaded, meta' = Checkpoint.loadInto fresh path
            expectBitIdentical loaded trained "restored"
            Expect.equal meta' meta "metadata"
            let metaOnly, entries = Checkpoint.inspect path
            Expect.equal metaOnly meta "inspect metadata"
            Expect.equal
                entries
                [ { Key = "model/b"; Dtype = torch.ScalarType.Float32; Shape = [| 4L |] }
                  { Key = "model/w"; Dtype = torch.ScalarType.Float32; Shape = [| 3L; 4L |] } ]
                "inspect entries"

        testCase "loadInto lists every missing, unexpected, reshaped and retyped key in one error" <| fun () ->
            use dir = new TempDir()
            let path = dir.File "m.safetensors"
            let inFile =
                State.ofSeq [ "model/w", torch.zeros(3L, 4L)
                              "model/b", torch.zeros([| 4L |], dtype = torch.float64)
                              "model/extra", torch.zeros(1L)
                              "opt/count", torch.tensor 1L ]
            Checkpoint.save path (inFile, CheckpointMetadata.empty)
            let expected =
                State.ofSeq [ "model/w", torch.zeros(4L, 3L)
                              "model/b", torch.zeros(4L)
                              "model/missing", torch.zeros(2L)
                              "opt/count", torch.tensor 1L ]
            let problems =
                [ DtypeMismatch("model/b", torch.ScalarType.Float32, torch.ScalarType.Float64)
                  UnexpectedKey "model/extra"
                  MissingKey "model/missing"
                  ShapeMismatch("model/w", [| 4L; 3L |], [| 3L; 4L |]) ]
            Expect.equal (Checkpoint.check expected path) problems "check"
            let e =
                try
                    Checkpoint.loadInto expected path |> ignore
                    failtest "expected a mismatch"
                with :? CheckpointMismatchException as e -> e
            Expect.equal (List.ofSeq e.Problems) problems "problems"
            Expect.equal e.Path path "path"
            mentions e.Message [ path; "4 problems"; "model/b"; "Float64"; "model/extra"; "model/missing"; "[3, 4]"; "[4, 3]" ]

        testCase "a missing file is FileNotFoundException naming it" <| fun () ->
            use dir = new TempDir()
            let path = dir.File "none.safetensors"
            let msg = throwsWith<FileNotFoundException> (fun () -> Checkpoint.load path |> ignore)
            mentions msg [ path ]

        testList "corrupted files are InvalidDataException naming the file and the problem" [
            let data = f32Bytes [ 1.0f; 2.0f ]
            let ok = """{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"""
            let cases =
                [ "empty file", [||], [ "0 bytes long" ]
                  "too short for the length", [| 1uy; 0uy; 0uy |], [ "3 bytes long" ]
                  "header length beyond the file", rawFile ok data |> Array.mapi (fun i b -> if i = 0 then 200uy else b), [ "header length is 200" ]
                  "absurd header length", Array.append (BitConverter.GetBytes UInt64.MaxValue) data, [ "more than" ]
                  "header not UTF-8", rawFile "{}" [||] |> Array.mapi (fun i b -> if i = 9 then 0xFFuy else b), [ "UTF-8" ]
                  "header not JSON", rawFile """{"x":{"dtype":"F32",""" data, [ "not valid JSON" ]
                  "header not an object", rawFile "[1,2]" [||], [ "Array" ]
                  "entry without dtype", rawFile """{"x":{"shape":[2],"data_offsets":[0,8]}}""" data, [ "'x'"; "dtype" ]
                  "unknown dtype", rawFile """{"x":{"dtype":"U16","shape":[4],"data_offsets":[0,8]}}""" data, [ "'x'"; "'U16'" ]
                  "negative shape", rawFile """{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""" data, [ "'x'"; "shape" ]
                  "offsets not a pair", rawFile """{"x":{"dtype":"F32","shape":[2],"data_offsets":[8]}}""" data, [ "'x'"; "data_offsets" ]
                  "offsets reversed", rawFile """{"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}""" data, [ "'x'"; "data_offsets" ]
                  "byte count disagrees with shape", rawFile """{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""" data, [ "'x'"; "needs 12 bytes"; "span 8" ]
                  "offsets past the end", rawFile """{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""" data, [ "need 16 bytes"; "only 8"; "truncated" ]
                  "overlapping entries",
                  rawFile """{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""" data,
                  [ "'y'"; "starts at data offset 4, expected 8" ]
                  "gap between entries", rawFile """{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""" data, [ "'x'"; "starts at data offset 4, expected 0" ]
                  "trailing bytes", rawFile ok (Array.append data [| 0uy |]), [ "need 8 bytes"; "holds 9" ]
                  "shape overflows", rawFile """{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}""" data, [ "'x'"; "overflows" ]
                  "key not a state key", rawFile """{"attn.0":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""" data, [ "'attn.0'"; "not a valid state key" ]
                  "duplicate key",
                  rawFile """{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""" data,
                  [ "'x' appears twice" ]
                  "step not an integer", rawFile """{"__metadata__":{"step":"ten"},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""" data, [ "'step'"; "'ten'" ]
                  "metadata not strings", rawFile """{"__metadata__":{"lr":0.1},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""" data, [ "'lr'"; "not a string" ] ]
            for name, bytes, fragments in cases do
                yield testCase name <| fun () ->
                    use dir = new TempDir()
                    let path = dir.File "bad.safetensors"
                    File.WriteAllBytes(path, bytes)
                    let msg = throwsWith<InvalidDataException> (fun () -> Checkpoint.load path |> ignore)
                    mentions msg (path :: fragments)
                    let msg = throwsWith<InvalidDataException> (fun () -> Checkpoint.loadInto (State.ofSeq [ "x", vec [ 1.0f; 2.0f ] ]) path |> ignore)
                    mentions msg [ path ]
                    let msg = throwsWith<InvalidDataException> (fun () -> Checkpoint.inspect path |> ignore)
                    mentions msg [ path ]

            yield testCase "a valid file cut short anywhere is refused" <| fun () ->
                use dir = new TempDir()
                let good = dir.File "good.safetensors"
                Checkpoint.save good (small (), CheckpointMetadata.ofStep 3L)
                let bytes = File.ReadAllBytes good
                let path = dir.File "cut.safetensors"
                for cut in 0 .. bytes.Length - 1 do
                    File.WriteAllBytes(path, bytes.[.. cut - 1])
                    let msg = throwsWith<InvalidDataException> (fun () -> Checkpoint.load path |> ignore)
                    mentions msg [ path ]
        ]
    ]
