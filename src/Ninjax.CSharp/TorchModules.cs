using static TorchSharp.torch;

namespace Ninjax.CSharp;

/// <summary>C# members of <see cref="TorchModule{M}"/>, the adapter that uses a TorchSharp module as a Ninjax module:
/// <c>enc = Sub("enc", () => new TorchModule&lt;Linear&gt;(() => nn.Linear(8, 4)))</c>. The adapter itself is usable
/// from C# as is; this adds what F# gets as an F# list.</summary>
public static class TorchModules
{
    /// <summary>The members added to every <see cref="TorchModule{M}"/>.</summary>
    /// <typeparam name="M">The type of the wrapped TorchSharp module.</typeparam>
    /// <param name="module">The adapter.</param>
    extension<M>(TorchModule<M> module) where M : nn.Module
    {
        /// <summary>Gradient targets selecting the module's parameters only (buffers such as BatchNorm's
        /// <c>num_batches_tracked</c> are not differentiable): their absolute keys (<c>model/enc/weight</c>), as F#'s
        /// <c>ParameterTargets</c>. Pass them to <c>Nj.Grad(loss, enc.ParameterTargets)</c> or
        /// <c>opt.Minimize(loss, enc.ParameterTargets, x)</c>.</summary>
        public IReadOnlyList<string> ParameterTargets
        {
            get
            {
                ArgumentNullException.ThrowIfNull(module);
                var prefix = module.Path + "/";
                return module.ParameterNames.Select(k => prefix + k).ToArray();
            }
        }
    }
}
