using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using static TorchSharp.torch;

namespace Ninjax.CSharp;

public static partial class Nj
{
    private static (Tensor Loss, IReadOnlyList<Tensor> Args, IReadOnlyList<Tensor> Grads) Unpack(Tuple<Tensor, FSharpList<Tensor>, FSharpList<Tensor>> result) =>
        (result.Item1, ListModule.ToArray(result.Item2), ListModule.ToArray(result.Item3));

    /// <summary>Differentiates a scalar loss of 1 tensor argument with respect to it (ninjax's <c>grad(f, [0])</c>)
    /// inside a purified call: <c>var (loss, args, grads) = Nj.GradArgs(f, 0)(x)</c>.</summary>
    /// <param name="loss">The impure loss function.</param>
    /// <param name="argnums">The positions to differentiate with respect to (0 for the only argument).</param>
    /// <returns>A function from the argument to the loss, the arguments at the positions and their gradients, in the
    /// order of <paramref name="argnums"/>.</returns>
    public static Func<Tensor, (Tensor Loss, IReadOnlyList<Tensor> Args, IReadOnlyList<Tensor> Grads)> GradArgs(
        Func<Tensor, Tensor> loss, params int[] argnums)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var positions = ListModule.OfArray(argnums);
        var function = FuncConvert.FromFunc(loss);
        return arg1 => Unpack(NjModule.gradArgs(positions, function, arg1));
    }

    /// <summary>Differentiates a scalar loss of 2 arguments with respect to the arguments at the given positions
    /// (ninjax's <c>grad(f, [0, 1])</c>), numbered from 0: <c>Nj.GradArgs((Tensor x, Tensor y) => ..., 1)(x, y)</c>.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <param name="loss">The impure loss function.</param>
    /// <param name="argnums">The positions to differentiate with respect to; their arguments must be tensors.</param>
    /// <returns>A function from the arguments to the loss, the arguments at the positions and their gradients, in the
    /// order of <paramref name="argnums"/>.</returns>
    public static Func<T1, T2, (Tensor Loss, IReadOnlyList<Tensor> Args, IReadOnlyList<Tensor> Grads)> GradArgs<T1, T2>(
        Func<T1, T2, Tensor> loss, params int[] argnums)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var positions = ListModule.OfArray(argnums);
        var function = FuncConvert.FromFunc<(T1, T2), Tensor>(a => loss(a.Item1, a.Item2));
        return (arg1, arg2) => Unpack(NjModule.gradArgs(positions, function, (arg1, arg2)));
    }

    /// <summary>Differentiates a scalar loss of 3 arguments with respect to the arguments at the given positions
    /// (ninjax's <c>grad(f, [0, 2])</c>), numbered from 0.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <param name="loss">The impure loss function.</param>
    /// <param name="argnums">The positions to differentiate with respect to; their arguments must be tensors.</param>
    /// <returns>A function from the arguments to the loss, the arguments at the positions and their gradients, in the
    /// order of <paramref name="argnums"/>.</returns>
    public static Func<T1, T2, T3, (Tensor Loss, IReadOnlyList<Tensor> Args, IReadOnlyList<Tensor> Grads)> GradArgs<T1, T2, T3>(
        Func<T1, T2, T3, Tensor> loss, params int[] argnums)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var positions = ListModule.OfArray(argnums);
        var function = FuncConvert.FromFunc<(T1, T2, T3), Tensor>(a => loss(a.Item1, a.Item2, a.Item3));
        return (arg1, arg2, arg3) => Unpack(NjModule.gradArgs(positions, function, (arg1, arg2, arg3)));
    }

    /// <summary>Differentiates a scalar loss of 4 arguments with respect to the arguments at the given positions
    /// (ninjax's <c>grad(f, [0, 3])</c>), numbered from 0.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="T4">The type of the fourth argument.</typeparam>
    /// <param name="loss">The impure loss function.</param>
    /// <param name="argnums">The positions to differentiate with respect to; their arguments must be tensors.</param>
    /// <returns>A function from the arguments to the loss, the arguments at the positions and their gradients, in the
    /// order of <paramref name="argnums"/>.</returns>
    public static Func<T1, T2, T3, T4, (Tensor Loss, IReadOnlyList<Tensor> Args, IReadOnlyList<Tensor> Grads)> GradArgs<T1, T2, T3, T4>(
        Func<T1, T2, T3, T4, Tensor> loss, params int[] argnums)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var positions = ListModule.OfArray(argnums);
        var function = FuncConvert.FromFunc<(T1, T2, T3, T4), Tensor>(a => loss(a.Item1, a.Item2, a.Item3, a.Item4));
        return (arg1, arg2, arg3, arg4) => Unpack(NjModule.gradArgs(positions, function, (arg1, arg2, arg3, arg4)));
    }
}
