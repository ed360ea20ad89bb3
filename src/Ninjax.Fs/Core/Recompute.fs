namespace Ninjax

open System
open System.Collections.Generic
open TorchSharp

/// Gradient checkpointing: a program's activations are recomputed in the backward pass
/// instead of kept (ninjax's checkpoint).
module internal Recompute =

    /// The autograd node of a checkpointed program: its forward output was computed without
    /// keeping activations, and its backward pass recomputes them.
    type private RecomputeNode() =
        inherit torch.autograd.MultiTensorFunction<RecomputeNode>()
        override _.Name = "NinjaxCheckpoint"
        override _.forward(ctx, args) =
            // args: the recompute closure, where to record failures, the precomputed output, then
            // the differentiable inputs.
            ctx.save_data("recompute", args.[0])
            ctx.save_data("failures", args.[1])
            let inputs = args |> Array.skip 3 |> Array.map (fun o -> o :?> torch.Tensor)
            ctx.save_for_backward(List<torch.Tensor>(inputs))
            ctx.save_data("shapes", inputs |> Array.map (fun t -> t.shape))
            List<torch.Tensor>([ (args.[2] :?> torch.Tensor).detach () ])
        override _.backward(ctx, outputGrads) =
            // This runs inside libtorch's backward pass, called from native code: an exception
            // escaping it (or TorchSharp's checks of what it returns) would end the process. A
            // failure is recorded for the gradient that started the pass, and the node returns
            // gradients on the meta device (no data), which libtorch's own checks reject with an
            // error, so the pass stops and the backward call raises.
            try
                let recompute = ctx.get_data "recompute" :?> (torch.Tensor[] -> torch.Tensor)
                let saved = ctx.get_saved_variables () |> Array.ofSeq
                use _grad = torch.enable_grad true
                let leaves = saved |> Array.map (fun t -> t.detach().requires_grad_(true))
                let output = recompute leaves
                let grads =
                    if output.requires_grad then
                        torch.autograd.backward([| output |], [| outputGrads.[0] |], Nullable false, false, leaves)
                        leaves |> Array.map (fun leaf -> leaf.grad)
                    else Array.zeroCreate leaves.Length
                let result = List<torch.Tensor>()
                result.Add null // the closure
                result.Add null // the failure list
                result.Add null // the precomputed output
                for i in 0 .. leaves.Length - 1 do
                    result.Add(if isNull (box grads.[i]) || grads.[i].IsInvalid then torch.zeros_like leaves.[i] else grads.[i])
                result
            with e ->
                let result = List<torch.Tensor>([ null; null; null ])
                try
                    match ctx.get_data "failures" with
                    | :? ResizeArray<exn> as failures -> lock failures (fun () -> failures.Add e)
                    | _ -> ()
                    match ctx.get_data "shapes" with
                    | :? (int64[][]) as shapes -> for shape in shapes do result.Add(torch.empty(shape, device = torch.META))
                    | _ -> ()
                with _ -> ()
                result

    /// Runs a program that maps tensors to a tensor without keeping its activations for the
    /// backward pass: gradients recompute them (ninjax's checkpoint), trading compute for memory.
    /// Gradients reach the explicit inputs and every state entry the program reads. Results,
    /// randomness included, are those of running the program directly; writes apply once.
    let checkpoint (f: torch.Tensor list -> Nj<torch.Tensor>) (inputs: torch.Tensor list) : Nj<torch.Tensor> =
        Nj(fun env world ->
            // The recomputation starts from the same world, so it sees the same randomness.
            let program = f
            let start = { world with Read = KeySet.empty; Modified = KeySet.empty; Replaced = KeySet.empty; Created = KeySet.empty }
            let struct (output, after) =
                use _noGrad = torch.no_grad ()
                Monad.runIn env start (program inputs)
            if isNull (box output) then raise (InvalidOperationException "A checkpointed program returned a null output.")
            let readKeys =
                after.Read |> Seq.filter (fun k -> world.State.Entries.ContainsKey k && world.State.Entries.[k].requires_grad) |> Array.ofSeq
            let differentiable = Array.append (Array.ofList inputs) (readKeys |> Array.map (fun k -> world.State.Entries.[k]))
            let merged =
                { after with
                    Read = KeySet.union world.Read after.Read
                    Modified = KeySet.union world.Modified after.Modified
                    Replaced = KeySet.union world.Replaced after.Replaced
                    Created = KeySet.union world.Created after.Created }
            if not (torch.is_grad_enabled ()) || not (differentiable |> Array.exists (fun t -> t.requires_grad)) then
                struct (output, merged)
            else
                let recompute (leaves: torch.Tensor[]) : torch.Tensor =
                    let xs = leaves |> Array.take inputs.Length |> List.ofArray
                    let mutable entries = world.State.Entries
                    readKeys |> Array.iteri (fun i k -> entries <- entries.Add(k, leaves.[inputs.Length + i]))
                    let struct (out, _) = Monad.runIn env { start with State = State entries } (program xs)
                    out
                let failures = if isNull env.Log then ResizeArray<exn>() else env.Log.BackwardFailures
                let args = Array.append [| box recompute; box failures; box output |] (differentiable |> Array.map box)
                struct ((RecomputeNode.apply args).[0], merged))
