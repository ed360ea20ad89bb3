using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using static TorchSharp.torch;

namespace Ninjax.CSharp;

public static partial class Nj
{
    /// <summary>Runs one of two functions inside a purified call (ninjax's <c>cond</c>): <c>onTrue</c> when
    /// <paramref name="predicate"/> holds, else <c>onFalse</c>. While creating (as in <c>Nj.Init</c>), both run first with
    /// their writes dropped, so the state holds both branches' entries whichever branch later calls take; only the chosen
    /// branch's writes apply. Each branch draws its own randomness.</summary>
    /// <typeparam name="T">What the branches return.</typeparam>
    /// <param name="predicate">Which branch to take.</param>
    /// <param name="onTrue">The branch taken when <paramref name="predicate"/> is true.</param>
    /// <param name="onFalse">The branch taken otherwise.</param>
    /// <returns>What the chosen branch returns.</returns>
    public static T Cond<T>(bool predicate, Func<T> onTrue, Func<T> onFalse)
    {
        ArgumentNullException.ThrowIfNull(onTrue);
        ArgumentNullException.ThrowIfNull(onFalse);
        return NjModule.cond(predicate, FuncConvert.FromFunc<ValueTuple, T>(_ => onTrue()), FuncConvert.FromFunc<ValueTuple, T>(_ => onFalse()), default);
    }

    /// <summary>Like <see cref="Cond{T}(bool, Func{T}, Func{T})"/>, passing <paramref name="operand"/> to the branch
    /// (ninjax's <c>cond(pred, true_fn, false_fn, *operands)</c>).</summary>
    /// <typeparam name="TOperand">The type of the operand.</typeparam>
    /// <typeparam name="T">What the branches return.</typeparam>
    /// <param name="predicate">Which branch to take.</param>
    /// <param name="onTrue">The branch taken when <paramref name="predicate"/> is true.</param>
    /// <param name="onFalse">The branch taken otherwise.</param>
    /// <param name="operand">The value both branches receive.</param>
    /// <returns>What the chosen branch returns.</returns>
    public static T Cond<TOperand, T>(bool predicate, Func<TOperand, T> onTrue, Func<TOperand, T> onFalse, TOperand operand)
    {
        ArgumentNullException.ThrowIfNull(onTrue);
        ArgumentNullException.ThrowIfNull(onFalse);
        return NjModule.cond(predicate, FuncConvert.FromFunc(onTrue), FuncConvert.FromFunc(onFalse), operand);
    }

    /// <summary>Like <see cref="Cond{T}(bool, Func{T}, Func{T})"/> for branches that return nothing.</summary>
    /// <param name="predicate">Which branch to take.</param>
    /// <param name="onTrue">The branch taken when <paramref name="predicate"/> is true.</param>
    /// <param name="onFalse">The branch taken otherwise.</param>
    public static void Cond(bool predicate, Action onTrue, Action onFalse)
    {
        ArgumentNullException.ThrowIfNull(onTrue);
        ArgumentNullException.ThrowIfNull(onFalse);
        NjModule.cond(predicate, FuncConvert.FromFunc<ValueTuple, ValueTuple>(_ =>
        {
            onTrue();
            return default;
        }), FuncConvert.FromFunc<ValueTuple, ValueTuple>(_ =>
        {
            onFalse();
            return default;
        }), default);
    }

    /// <summary>Loops <paramref name="step"/> over the slices of <paramref name="xs"/> along <paramref name="axis"/>
    /// inside a purified call (ninjax's <c>scan</c>), threading a carry and the state, with fresh randomness per step;
    /// the per-step outputs are stacked along the same axis. Gradients flow through every step:
    /// <c>var (h, ys) = Nj.Scan((h, x) => { var next = cell.Forward(h, x); return (next, next); }, h0, xs)</c>.</summary>
    /// <typeparam name="TCarry">The type of the carry.</typeparam>
    /// <param name="step">Gets the carry and one slice; returns the next carry and the step's output (the same shape and
    /// dtype at every step).</param>
    /// <param name="carry">The first carry.</param>
    /// <param name="xs">The tensor to loop over; at least one slice along <paramref name="axis"/>.</param>
    /// <param name="axis">The axis to loop along (negative counts from the end); 0 by default.</param>
    /// <param name="reverse">Loop from the last slice to the first (ninjax's <c>reverse=True</c>); the outputs keep the
    /// order of <paramref name="xs"/>, and step i draws the same randomness in either direction.</param>
    /// <returns>The last carry and the stacked outputs.</returns>
    public static (TCarry Carry, Tensor Outputs) Scan<TCarry>(Func<TCarry, Tensor, (TCarry Carry, Tensor Output)> step, TCarry carry, Tensor xs, int axis = 0, bool reverse = false)
    {
        ArgumentNullException.ThrowIfNull(step);
        var fsharp = FuncConvert.FromFunc<TCarry, Tensor, Tuple<TCarry, Tensor>>((c, x) => step(c, x).ToTuple());
        var result = NjModule.scanWith(new ScanOptions(axis, reverse), fsharp, carry, xs);
        return (result.Item1, result.Item2);
    }

    /// <summary>Runs <paramref name="step"/> <paramref name="length"/> times inside a purified call without a tensor to loop
    /// over (ninjax's <c>scan</c> with a <c>length</c> and no <c>xs</c>): the step gets the carry and its index (0 to
    /// length - 1), and the per-step outputs are stacked in index order along <paramref name="axis"/>, whichever way the
    /// loop runs.</summary>
    /// <typeparam name="TCarry">The type of the carry.</typeparam>
    /// <param name="step">Gets the carry and the step's index; returns the next carry and the step's output (the same
    /// shape and dtype at every step).</param>
    /// <param name="carry">The first carry.</param>
    /// <param name="length">How many steps; at least one.</param>
    /// <param name="reverse">Run the steps from the last index to the first.</param>
    /// <param name="axis">The axis the outputs are stacked along; 0 by default.</param>
    /// <returns>The last carry and the stacked outputs.</returns>
    public static (TCarry Carry, Tensor Outputs) ScanLength<TCarry>(Func<TCarry, long, (TCarry Carry, Tensor Output)> step, TCarry carry, long length, bool reverse = false, int axis = 0)
    {
        ArgumentNullException.ThrowIfNull(step);
        var fsharp = FuncConvert.FromFunc<TCarry, long, Tuple<TCarry, Tensor>>((c, i) => step(c, i).ToTuple());
        var result = NjModule.scanLength(new ScanOptions(axis, reverse), length, fsharp, carry);
        return (result.Item1, result.Item2);
    }

    /// <summary>Repeats <paramref name="body"/> while <paramref name="condition"/> holds inside a purified call (JAX's
    /// <c>while_loop</c>), threading a carry and the state, with fresh randomness per iteration (derived from one seed
    /// for the loop and the iteration's index). While creating, the body first runs once with its writes dropped, so its
    /// entries exist even if the condition is false from the start.</summary>
    /// <typeparam name="TCarry">The type of the carry.</typeparam>
    /// <param name="condition">Gets the carry; true runs the body once more.</param>
    /// <param name="body">Gets the carry and returns the next one.</param>
    /// <param name="carry">The first carry.</param>
    /// <returns>The carry once the condition fails.</returns>
    public static TCarry WhileLoop<TCarry>(Func<TCarry, bool> condition, Func<TCarry, TCarry> body, TCarry carry)
    {
        ArgumentNullException.ThrowIfNull(condition);
        ArgumentNullException.ThrowIfNull(body);
        return NjModule.whileLoop(FuncConvert.FromFunc(condition), FuncConvert.FromFunc(body), carry);
    }

    /// <summary>Gradient checkpointing inside a purified call (ninjax's <c>checkpoint</c>): runs
    /// <paramref name="function"/> without keeping its activations; the backward pass recomputes them, with the same
    /// randomness. Gradients reach <paramref name="inputs"/> and every state entry the function reads; its writes apply
    /// once. Trades compute for memory. For one to three inputs, pass the function and the tensors:
    /// <c>h = Nj.Checkpoint(block.Forward, h)</c>.</summary>
    /// <param name="function">Gets the inputs (as leaves of the graph, in order) and returns a tensor.</param>
    /// <param name="inputs">The tensors the function computes from.</param>
    /// <returns>What the function returns.</returns>
    public static Tensor Checkpoint(Func<IReadOnlyList<Tensor>, Tensor> function, IReadOnlyList<Tensor> inputs)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(inputs);
        var fsharp = FuncConvert.FromFunc<FSharpList<Tensor>, Tensor>(xs => function(ListModule.ToArray(xs)));
        return NjModule.checkpoint(fsharp, ListModule.OfSeq(inputs));
    }

    /// <summary>Gradient checkpointing of a function of one tensor: <c>h = Nj.Checkpoint(block.Forward, h)</c>. See
    /// <see cref="Checkpoint(Func{IReadOnlyList{Tensor}, Tensor}, IReadOnlyList{Tensor})"/>.</summary>
    /// <param name="function">The function to run without keeping activations.</param>
    /// <param name="input">Its input.</param>
    /// <returns>What the function returns.</returns>
    public static Tensor Checkpoint(Func<Tensor, Tensor> function, Tensor input)
    {
        ArgumentNullException.ThrowIfNull(function);
        return Checkpoint(xs => function(xs[0]), [input]);
    }

    /// <summary>Gradient checkpointing of a function of two tensors: <c>Nj.Checkpoint((a, b) => f(a, b), a, b)</c>.</summary>
    /// <param name="function">The function to run without keeping activations.</param>
    /// <param name="input1">Its first input.</param>
    /// <param name="input2">Its second input.</param>
    /// <returns>What the function returns.</returns>
    public static Tensor Checkpoint(Func<Tensor, Tensor, Tensor> function, Tensor input1, Tensor input2)
    {
        ArgumentNullException.ThrowIfNull(function);
        return Checkpoint(xs => function(xs[0], xs[1]), [input1, input2]);
    }

    /// <summary>Gradient checkpointing of a function of three tensors.</summary>
    /// <param name="function">The function to run without keeping activations.</param>
    /// <param name="input1">Its first input.</param>
    /// <param name="input2">Its second input.</param>
    /// <param name="input3">Its third input.</param>
    /// <returns>What the function returns.</returns>
    public static Tensor Checkpoint(Func<Tensor, Tensor, Tensor, Tensor> function, Tensor input1, Tensor input2, Tensor input3)
    {
        ArgumentNullException.ThrowIfNull(function);
        return Checkpoint(xs => function(xs[0], xs[1], xs[2]), [input1, input2, input3]);
    }
}
