namespace Ninjax

open System
open TorchSharp

/// Exponential moving averages of a module's entries (Polyak averaging: the average of a GAN's
/// generator that samples, a teacher network), kept in another module of the same shape and so in
/// the state like everything else: checkpoints carry them. C# calls it by its compiled name:
/// <c>MovingAverage.Update(average, source, 0.995)</c>.
[<RequireQualifiedAccess>]
module MovingAverage =

    /// Moves every floating-point entry of <paramref name="average"/> towards the same entry of
    /// <paramref name="source"/> (<c>average = decay * average + (1 - decay) * source</c>, computed
    /// as libtorch's <c>lerp</c> with the weight <c>1 - decay</c>) and copies the others (such as a
    /// step counter). On first use each entry of the average starts as a copy of the source's.
    /// The average's entries are buffers: state that is not trained, which module targets and the
    /// summary's trainable count leave out. Call it inside a purified call, outside gradients.
    /// Contiguous float32 and float64 CPU entries take one SIMD pass each (System.Numerics, as
    /// libtorch's vectorized lerp rounds), others libtorch's lerp. In a donating call the average's
    /// tensors are updated in place; otherwise new tensors are written: the same bits either way.
    [<CompiledName("Update")>]
    let update (average: Module) (source: Module) (decay: float) : unit =
        if isNull average then raise (ArgumentNullException("average"))
        if isNull source then raise (ArgumentNullException("source"))
        if not (decay >= 0.0 && decay < 1.0) then
            raise (ArgumentOutOfRangeException("decay", decay, "The decay of a moving average must lie in [0, 1)."))
        use _ = torch.no_grad ()
        let weight = 1.0 - decay
        // What the call may update in place (a donating call owns the average's tensors); a grant
        // counts as a write in place, as Nj.mayUpdateInPlace's does.
        let mayUpdate = Ambient.exec Prog.inPlaceGrant
        // lerp's weight as a tensor for the entries the SIMD loops cannot read (TorchSharp has no
        // scalar overload), made once per update and dtype.
        let mutable weightTensor: torch.Tensor = null
        let weightOf (dtype: torch.ScalarType) =
            if isNull weightTensor || weightTensor.dtype <> dtype then weightTensor <- torch.tensor (weight, dtype = dtype)
            weightTensor
        for KeyValue(key, current) in source.Values.Entries do
            let old = average.Buffer(key, fun () -> current.clone ())
            if not (torch.is_floating_point current) then average.Put(key, current.clone ()) |> ignore
            else
                let dtype = current.dtype
                if old.dtype <> dtype || not (Shape.same old current) then
                    raise (
                        ArgumentException(
                            sprintf "The moving average %O holds '%s' with shape %s dtype %O, its source %O with shape %s dtype %O: average a module of the same shape." average key (Text.shape old) old.dtype source (Text.shape current) dtype,
                            "average"
                        )
                    )
                let simd = (dtype = torch.float32 || dtype = torch.float64) && Kernels.isDirect dtype old && Kernels.isDirect dtype current
                let inPlace = mayUpdate old
                if simd then
                    // One loop either way, into the average's tensor or a new one: the same bits.
                    let out = if inPlace then old else torch.empty_like old
                    if dtype = torch.float32 then Kernels.lerp32 (float32 weight, Kernels.span old, Kernels.span current, Kernels.span out)
                    else Kernels.lerp64 (weight, Kernels.span old, Kernels.span current, Kernels.span out)
                    average.Put(key, out) |> ignore
                elif inPlace then average.Put(key, old.lerp_ (current, weightOf dtype)) |> ignore
                else average.Put(key, torch.lerp (old, current, weightOf dtype)) |> ignore
