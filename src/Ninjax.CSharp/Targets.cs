using System.Collections;
using System.Text.RegularExpressions;
using Microsoft.FSharp.Collections;

namespace Ninjax.CSharp;

/// <summary>Turns the targets C# code passes to <see cref="Nj.Grad(Func{TorchSharp.torch.Tensor}, object[])"/> into
/// Ninjax.Fs targets: a module (or anything with a path) selects its entries, a string key selects that key
/// and everything under it, a <see cref="Regex"/> selects the keys it matches. Sequences are flattened.</summary>
internal static class Targets
{
    public static FSharpList<Target> Of(object?[]? targets)
    {
        ArgumentNullException.ThrowIfNull(targets);
        var list = new List<Target>();
        for (var i = 0; i < targets.Length; i++) Add(targets[i], i, list);
        return ListModule.OfSeq(list);
    }

    private static void Add(object? target, int position, List<Target> list)
    {
        switch (target)
        {
            case null:
                throw new ArgumentNullException("targets", $"Gradient target at position {position} is null.");
            case Target t:
                list.Add(t);
                break;
            case IScoped scoped:
                list.Add(Target.NewModule(scoped));
                break;
            case string key:
                list.Add(Target.NewKey(key));
                break;
            case Regex pattern:
                list.Add(Target.NewPattern(pattern));
                break;
            case IEnumerable many:
                foreach (var inner in many) Add(inner, position, list);
                break;
            default:
                throw new ArgumentException(
                    $"Gradient target at position {position} is a {target.GetType().Name}; targets are modules, string keys or Regex patterns.",
                    "targets");
        }
    }
}
