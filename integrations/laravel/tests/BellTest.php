<?php

namespace Tidings\Laravel\Tests;

use Tidings\Laravel\Tests\Fixtures\User;
use Tidings\Laravel\Tidings;

class BellTest extends TestCase
{
    public function testTheBellComponentRendersTheScriptTheElementATokenAndItsTokenUrl(): void
    {
        $this->logIn('laravel-bell');
        $html = $this->render('<x-tidings-bell theme="dark" />', []);
        $url = rtrim(getenv('TIDINGS_URL'), '/');

        $this->assertMatchesRegularExpression('/<script type="module" src="' . preg_quote($url, '/') . '\/static\/tidings-bell.js" *><\/script>/', $html);
        $this->assertMatchesRegularExpression('/<tidings-bell base-url="' . preg_quote($url, '/') . '" +token="([\w-]+\.[\w-]+\.[\w-]+)"/', $html);
        // The bell fetches the next token itself: no inline script (Vue 2 roots, strict CSP).
        $this->assertStringContainsString('token-url="/tidings/token"', $html);
        $this->assertDoesNotMatchRegularExpression('/<script(?![^>]*\bsrc=)/', $html);
        $this->assertStringContainsString('no-push', $html);
        $this->assertStringContainsString('theme="dark"', $html);
        $claims = $this->claims($html);
        $this->assertSame('laravel-bell', $claims['sub']);
        $this->assertLessThanOrEqual(time(), $claims['iat']);
        $this->assertSame(900, $claims['exp'] - $claims['iat']);
    }

    public function testTheLayoutOfTheGuideShowsTheBellToTheLoggedInUserOnly(): void
    {
        $layout = __DIR__ . '/Fixtures/views/app.blade.php';
        $this->assertStringNotContainsString('tidings-bell', $this->app->make('view')->file($layout)->render());

        $this->logIn('laravel-layout');
        $html = $this->app->make('view')->file($layout)->render();
        $this->assertSame('laravel-layout', $this->claims($html)['sub']);
    }

    public function testTheVue2LayoutOfTheGuideHasBothBellsAndNoInlineScript(): void
    {
        $this->logIn('laravel-vue2');
        $html = $this->app->make('view')->file(__DIR__ . '/Fixtures/views/vue2.blade.php')->render();
        $url = rtrim(getenv('TIDINGS_URL'), '/');

        $this->assertMatchesRegularExpression('/<notification-bell base-url="' . preg_quote($url, '/') . '"\s+token-url="\/tidings\/token"\s+no-push\s*><\/notification-bell>/', $html);
        $this->assertSame('laravel-vue2', $this->claims($html)['sub']);
        $this->assertDoesNotMatchRegularExpression('/<script(?![^>]*\bsrc=)/', $html);
    }

    public function testAnotherUsersBellNeedsATokenUrlThatMintsForThatUser(): void
    {
        $this->logIn('laravel-admin');
        $other = new User(['id' => 'laravel-other']);
        try {
            $this->render('<x-tidings-bell :user="$other" />', ['other' => $other]);
            $this->fail('rendered a bell that would refresh as the logged-in user');
        } catch (\Throwable $exc) {
            // Blade wraps what a component throws in a ViewException.
            $this->assertStringContainsString('needs a token-url', $exc->getMessage());
        }
        $html = $this->render('<x-tidings-bell :user="$other" token-url="/admin/users/7/tidings-token" />', ['other' => $other]);
        $this->assertSame('laravel-other', $this->claims($html)['sub']);
        $this->assertStringContainsString('token-url="/admin/users/7/tidings-token"', $html);
        // The logged-in user as :user is the default bell.
        $html = $this->render('<x-tidings-bell :user="$me" />', ['me' => new User(['id' => 'laravel-admin'])]);
        $this->assertSame('laravel-admin', $this->claims($html)['sub']);
    }

    public function testTheNonceAndPushAreHandedThrough(): void
    {
        $this->logIn('laravel-nonce');
        $html = $this->render('<x-tidings-bell nonce="n0nce-123" :push="true" />', []);

        $this->assertMatchesRegularExpression('/<script type="module" src="[^"]+" +nonce="n0nce-123" *><\/script>/', $html);
        $this->assertStringNotContainsString('no-push', $html);
    }

    public function testWithoutTheSecretAPageRenderNeverCallsTidings(): void
    {
        // tidings is down and the app has no secret: the page still renders, with the token
        // URL only; the bell fetches its first token from the app's route.
        $this->app->instance(Tidings::class, new Tidings('http://127.0.0.1:9', 'key'));
        $this->logIn('laravel-nosecret');
        $start = microtime(true);
        $html = $this->render('<x-tidings-bell />', []);

        $this->assertLessThan(0.5, microtime(true) - $start);
        $this->assertStringContainsString('token-url="/tidings/token"', $html);
        $this->assertStringNotContainsString('token="', str_replace('token-url="', '', $html));
    }

    private function logIn(string $id): void
    {
        // The app's auth: the component asks it for the logged-in user.
        $this->app->instance('auth', new class($id) {
            /** @var string */
            private $id;

            public function __construct(string $id)
            {
                $this->id = $id;
            }

            public function user()
            {
                return new User(['id' => $this->id]);
            }

            /** For @auth: the default guard is this one. */
            public function guard()
            {
                return $this;
            }

            public function check(): bool
            {
                return true;
            }
        });
    }

    /** @return array<string, mixed> */
    private function claims(string $html): array
    {
        preg_match('/<tidings-bell [^>]*token="([^"]+)"/', $html, $match);

        return json_decode(base64_decode(strtr(explode('.', $match[1])[1], '-_', '+/')), true);
    }

    private function render(string $blade, array $data): string
    {
        $path = sys_get_temp_dir() . '/tidings-laravel-' . getmypid() . '/page' . md5($blade) . '.blade.php';
        file_put_contents($path, $blade);

        return $this->app->make('view')->file($path, $data)->render();
    }
}
